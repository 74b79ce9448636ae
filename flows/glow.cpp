#include "flows/glow.hpp"

#include "autograd/instantiate.hpp"
#include "autograd/shape.hpp"
#include "flows/actnorm.hpp"
#include "flows/class_shift.hpp"
#include "flows/coupling.hpp"
#include "flows/invconv.hpp"
#include "flows/logit.hpp"
#include "flows/squeeze.hpp"
#include "nn/activation.hpp"
#include "nn/conv2d.hpp"
#include "nn/sequential.hpp"
#include "nn/zero_conv.hpp"

namespace flowgrad::flows {

template <class T>
std::shared_ptr<nn::Sequential<T>> glow_coupling_net(std::size_t in, std::size_t out, std::size_t hidden,
                                                     bool actnorm) {
  if (in == 0 || out == 0 || hidden == 0)
    throw std::invalid_argument("glow_coupling_net: in, out and hidden must be positive");
  auto net = std::make_shared<nn::Sequential<T>>();
  auto hidden_layer = [&](std::shared_ptr<nn::Conv2d<T>> conv) {
    net->push_back(conv);
    if (actnorm) net->push_back(std::make_shared<ActNormLayer<T>>(hidden));
    net->push_back(std::make_shared<nn::ReLU<T>>());
  };
  hidden_layer(std::make_shared<nn::Conv2d<T>>(in, hidden, 3, 3, 1, 1, !actnorm));
  hidden_layer(std::make_shared<nn::Conv2d<T>>(hidden, hidden, 1, 1, 1, 0, !actnorm));
  net->push_back(std::make_shared<nn::ZeroConv2d<T>>(hidden, out));
  return net;
}

template <class T>
Glow<T>::Glow(const GlowConfig& config) : config_(config) {
  std::size_t c = config.channels, h = config.height, w = config.width;
  const std::size_t shrink = std::size_t(1) << config.levels;
  if (config.levels == 0 || c == 0 || h == 0 || w == 0 || h % shrink || w % shrink || config.hidden == 0)
    throw std::invalid_argument("Glow: needs levels >= 1 and height, width divisible by 2^levels");
  if ((config.class_per_position || config.class_splits) && !config.classes)
    throw std::invalid_argument("Glow: class_per_position and class_splits need classes > 0");
  this->name_ = "Glow";
  this->input_shape_ = {c, h, w};
  levels = this->register_module("levels", std::make_shared<ModuleList<T>>());
  priors = this->register_module("priors", std::make_shared<ModuleList<T>>());
  struct ConditionedSplit {
    std::shared_ptr<Split<T>> split;
    std::size_t c, h, w;
  };
  std::vector<ConditionedSplit> conditioned;
  for (std::size_t l = 0; l < config.levels; ++l) {
    c *= 4, h /= 2, w /= 2;
    auto steps = levels->push_back(std::make_shared<FlowSequence<T>>());
    for (std::size_t k = 0; k < config.steps; ++k) {
      auto step = steps->push_back(std::make_shared<FlowSequence<T>>());
      step->push_back(std::make_shared<ActNorm<T>>(c));
      if (config.lu)
        step->push_back(std::make_shared<InvConv1x1LU<T>>(c));
      else
        step->push_back(std::make_shared<InvConv1x1<T>>(c));
      auto net = glow_coupling_net<T>(c / 2, config.affine ? c : c / 2, config.hidden, config.net_actnorm);
      step->push_back(std::make_shared<GlowCoupling<T>>(net, config.affine, config.scale_clamp));
    }
    auto level = std::make_shared<FlowSequence<T>>();
    level->push_back(std::make_shared<Squeeze<T>>());
    level->push_back(steps);
    std::shared_ptr<Split<T>> split;
    if (l + 1 < config.levels) {
      auto prior = priors->push_back(std::make_shared<nn::ZeroConv2d<T>>(c / 2, c));
      split = std::make_shared<Split<T>>(FactorOut::Second, prior, config.prior_scale_cap);
      if (config.class_splits) conditioned.push_back({split, c, h, w});
      c /= 2;
    }
    this->levels_.push_back({level, split});
  }
  this->top_shape_ = {c, h, w};
  if (config.learn_top) {
    top_mean = this->register_parameter("top_prior.mean", xt::zeros<T>({std::size_t(1), c, std::size_t(1), std::size_t(1)}));
    top_logs = this->register_parameter("top_prior.logs", xt::zeros<T>({std::size_t(1), c, std::size_t(1), std::size_t(1)}));
    this->top_prior_ = std::make_shared<DiagonalGaussian<T>>(top_mean, top_logs);
  } else {
    this->top_prior_ = std::make_shared<StandardGaussian<T>>();
  }
  // The class maps last (they draw from the generator): the rest is initialised as unconditional.
  if (config.classes)
    class_map = this->register_module("top_prior.class_map",
                                      make_class_map<T>(config.classes, 2 * c, h, w, config.class_per_position));
  if (config.class_splits) {
    class_maps = this->register_module("class_maps", std::make_shared<ModuleList<T>>());
    for (auto& s : conditioned)
      s.split->set_class_map(class_maps->push_back(make_class_map<T>(config.classes, s.c, s.h, s.w, config.class_per_position)));
  }
  if (config.logit_alpha > 0) this->preprocess_ = std::make_shared<Logit<T>>(config.logit_alpha);
}

template <class T>
std::shared_ptr<Distribution<T>> Glow<T>::top_prior_given(const Tensor<T>& context) const {
  if (!config_.classes) return this->top_prior_;
  const Shape& top = this->top_shape_;
  const auto shift = chunk(class_shift(*class_map, context, {context.shape()[0], 2 * top[0], top[1], top[2]}), 2, 1);
  if (!config_.learn_top) return std::make_shared<DiagonalGaussian<T>>(shift[0], shift[1]);
  return std::make_shared<DiagonalGaussian<T>>(shift[0] + top_mean, shift[1] + top_logs);
}

#define FLOWGRAD_GLOW(T)                                                                                      \
  template class Glow<T>;                                                                                     \
  template std::shared_ptr<nn::Sequential<T>> glow_coupling_net<T>(std::size_t, std::size_t, std::size_t, bool);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_GLOW)

}  // namespace flowgrad::flows
