#include "flows/realnvp.hpp"

#include "autograd/instantiate.hpp"
#include "flows/coupling.hpp"
#include "flows/logit.hpp"
#include "flows/squeeze.hpp"
#include "nn/resnet_st.hpp"

namespace flowgrad::flows {

template <class T>
RealNVP<T>::RealNVP(const RealNVPConfig& config) : config_(config) {
  std::size_t c = config.channels, h = config.height, w = config.width;
  const std::size_t shrink = std::size_t(1) << (config.scales ? config.scales - 1 : 0);
  if (config.scales == 0 || c == 0 || h % shrink || w % shrink || h == 0 || w == 0)
    throw std::invalid_argument("RealNVP: needs scales >= 1 and height, width divisible by 2^(scales-1)");
  this->name_ = "RealNVP";
  this->input_shape_ = {c, h, w};
  auto coupling = [&](xt::xarray<T> mask, std::size_t channels) {
    return std::make_shared<AffineCoupling<T>>(
        std::move(mask), std::make_shared<nn::ResNetST<T>>(channels, config.mid, config.blocks));
  };
  for (std::size_t s = 0; s + 1 < config.scales; ++s) {
    const std::string prefix = "s" + std::to_string(s + 1);
    auto a = this->register_module(prefix + "a", std::make_shared<FlowSequence<T>>());
    for (std::size_t i = 0; i < config.checkerboard; ++i)
      a->push_back(coupling(checkerboard_mask<T>(c, h, w, int(i % 2)), c));
    c *= 4, h /= 2, w /= 2;
    auto b = this->register_module(prefix + "b", std::make_shared<FlowSequence<T>>());
    for (std::size_t i = 0; i < config.channelwise; ++i)
      b->push_back(coupling(channel_mask<T>(c, h, w, i % 2 == 0), c));
    before_squeeze.push_back(a);
    after_squeeze.push_back(b);
    // This scale's flow: a, squeeze, b; then factor out the first half.
    auto level = std::make_shared<FlowSequence<T>>();
    level->push_back(a);
    level->push_back(std::make_shared<Squeeze<T>>());
    level->push_back(b);
    this->levels_.push_back({level, std::make_shared<Split<T>>(FactorOut::First)});
    c /= 2;
  }
  final = this->register_module("final", std::make_shared<FlowSequence<T>>());
  for (std::size_t i = 0; i < config.final_couplings; ++i)
    final->push_back(coupling(checkerboard_mask<T>(c, h, w, int(i % 2)), c));
  this->levels_.push_back({final, nullptr});
  this->top_prior_ = std::make_shared<StandardGaussian<T>>();
  this->top_shape_ = {c, h, w};
  if (config.logit_alpha > 0) this->preprocess_ = std::make_shared<Logit<T>>(config.logit_alpha);
}

#define FLOWGRAD_REALNVP(T) template class RealNVP<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_REALNVP)

}  // namespace flowgrad::flows
