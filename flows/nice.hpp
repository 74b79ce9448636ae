// NICE (Dinh et al. 2014): additive couplings on the flat vector with alternating
// odd/even splits, each conditioner an MLP, then a diagonal scaling; logistic or
// Gaussian prior. Names as the reference: nets.{i}.{2j}.weight/bias, log_scale.
#pragma once

#include <memory>

#include "flows/model.hpp"
#include "nn/sequential.hpp"

namespace flowgrad::flows {

struct NICEConfig {
  enum class Prior { Logistic, Gaussian };
  std::size_t dim = 784;       // flat input size (even)
  std::size_t hidden = 1000;   // width of each hidden layer
  std::size_t layers = 5;      // hidden layers per coupling MLP
  std::size_t couplings = 4;
  Prior prior = Prior::Logistic;
  double logit_alpha = 0;      // > 0: a Logit layer first (the bench config has none)

  static NICEConfig bench() { return {}; }  // the reference's NICE: 19,158,352 parameters
};

template <class T = float>
class NICE : public FlowModel<T> {
 public:
  explicit NICE(const NICEConfig& config = NICEConfig::bench());
  const NICEConfig& config() const { return config_; }

  std::shared_ptr<ModuleList<T>> nets;
  Tensor<T> log_scale;

 private:
  NICEConfig config_;
};

}  // namespace flowgrad::flows
