// Logit preprocessing as a flow: y = logit(p), p = alpha + (1 - 2 alpha) x, for x in [0,1).
// logdet = sum log(1 - 2 alpha) - log p - log(1 - p), exact. alpha = 0.05 for CIFAR-10
// (Real NVP), 1e-6 for MNIST. No parameters.
#pragma once

#include "flows/flow.hpp"

namespace flowgrad::flows {

template <class T = float>
class Logit : public Flow<T> {
 public:
  explicit Logit(double alpha = 0.05);
  FlowResult<T> forward(const Tensor<T>& x) override;
  FlowResult<T> inverse(const Tensor<T>& y) override;
  double alpha() const { return alpha_; }

 private:
  double alpha_;
};

}  // namespace flowgrad::flows
