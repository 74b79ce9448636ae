#include "flows/nice.hpp"

#include "autograd/instantiate.hpp"
#include "flows/coupling.hpp"
#include "flows/logit.hpp"
#include "nn/activation.hpp"
#include "nn/linear.hpp"

namespace flowgrad::flows {

template <class T>
NICE<T>::NICE(const NICEConfig& config) : config_(config) {
  if (config.dim < 2 || config.dim % 2 || config.layers == 0 || config.hidden == 0)
    throw std::invalid_argument("NICE: dim must be even and >= 2, hidden and layers positive");
  this->name_ = "NICE";
  this->input_shape_ = {config.dim};
  this->top_shape_ = {config.dim};
  const std::size_t half = config.dim / 2;
  nets = this->register_module("nets", std::make_shared<ModuleList<T>>());
  auto flow = std::make_shared<FlowSequence<T>>();
  for (std::size_t i = 0; i < config.couplings; ++i) {
    auto mlp = std::make_shared<nn::Sequential<T>>();
    std::size_t in = half;
    for (std::size_t l = 0; l < config.layers; ++l) {
      mlp->push_back(std::make_shared<nn::Linear<T>>(in, config.hidden));
      mlp->push_back(std::make_shared<nn::ReLU<T>>());
      in = config.hidden;
    }
    mlp->push_back(std::make_shared<nn::Linear<T>>(in, half));
    nets->push_back(mlp);
    flow->push_back(std::make_shared<AdditiveCoupling<T>>(mlp, int(i % 2)));
  }
  log_scale = this->register_parameter("log_scale", xt::zeros<T>({config.dim}));
  flow->push_back(std::make_shared<DiagonalScaling<T>>(log_scale));
  this->levels_.push_back({flow, nullptr});
  if (config.prior == NICEConfig::Prior::Logistic)
    this->top_prior_ = std::make_shared<StandardLogistic<T>>();
  else
    this->top_prior_ = std::make_shared<StandardGaussian<T>>();
  if (config.logit_alpha > 0) this->preprocess_ = std::make_shared<Logit<T>>(config.logit_alpha);
}

#define FLOWGRAD_NICE(T) template class NICE<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_NICE)

}  // namespace flowgrad::flows
