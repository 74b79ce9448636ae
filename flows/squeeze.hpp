// Squeeze: (B, C, H, W) -> (B, 4C, H/2, W/2), each 2x2 patch moved into channels with the
// reference's order: new channel = c*4 + 2*dy + dx. A permutation, so logdet = 0.
#pragma once

#include "flows/flow.hpp"

namespace flowgrad::flows {

template <class T> Tensor<T> squeeze2x2(const Tensor<T>& x);
template <class T> Tensor<T> unsqueeze2x2(const Tensor<T>& y);

template <class T = float>
class Squeeze : public Flow<T> {
 public:
  FlowResult<T> forward(const Tensor<T>& x) override;
  FlowResult<T> inverse(const Tensor<T>& y) override;
};

}  // namespace flowgrad::flows
