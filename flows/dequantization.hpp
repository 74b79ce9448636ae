// Variational dequantization (Flow++, Ho et al. 2019, section 3.1): instead of uniform
// noise u ~ U[0,1)^D, the noise comes from a learned conditional flow q(u | pixels), and
// training maximises the bound
//   log P(pixels) >= E_q[ log p((pixels + u) / 256) - D ln 256 - log q(u | pixels) ]
// (the D ln 256 is bits_per_dim's; so bits/dim of log p - log q is the bound's).
//
// q: eps ~ N(0, I) -> h = couplings(eps | features(pixels)) -> u = sigmoid(h), so
//   log q(u | pixels) = log N(eps) - logdet(couplings) - sum log sigmoid'(h).
// The couplings are Real NVP's AffineCouplings (checkerboard masks, or channel masks after
// a squeeze) whose nets also see a feature map of the pixels (ConditionedNet); their last
// convs start at zero, so q starts as a logistic-normal independent of the pixels.
#pragma once

#include <memory>

#include "flows/flow.hpp"
#include "nn/sequential.hpp"

namespace flowgrad::flows {

struct DequantizerConfig {
  std::size_t channels = 1, height = 28, width = 28;
  std::size_t hidden = 16;    // width of the feature net and of the coupling nets
  std::size_t couplings = 4;  // masks alternating: checkerboard parities, or channel halves after a squeeze
  // q works on 2x2-squeezed tensors (4C channels at half the height and width, channel
  // masks alternating halves): a quarter of the positions, so a quarter of the cost.
  bool squeeze = false;
};

// A coupling net that also sees a context, concatenated on the channels:
// net(cat(x, *context)). The owner sets the shared context before each pass.
template <class T = float>
class ConditionedNet : public nn::Layer<T> {
 public:
  ConditionedNet(std::shared_ptr<nn::Layer<T>> net, std::shared_ptr<Tensor<T>> context);
  Tensor<T> forward(const Tensor<T>& x) override;

  std::shared_ptr<nn::Layer<T>> net;

 private:
  std::shared_ptr<Tensor<T>> context_;
};

template <class T>
struct Dequantized {
  // (pixels + u) / 256, (B, C, H, W), on the tape; in [0, 1), but in float32 u rounds to 1
  // once h > ~17 (then log_q(pixels, u) of that u is not finite; forward's log_q still is).
  Tensor<T> x;
  Tensor<T> log_q;  // log q(u | pixels), (B,)
};

template <class T = float>
class VariationalDequantizer : public nn::Module<T> {
 public:
  explicit VariationalDequantizer(const DequantizerConfig& config);
  const DequantizerConfig& config() const { return config_; }

  // pixels: (B, C, H, W) values 0..255 (any batch); noise: standard normal, the same shape.
  Dequantized<T> forward(const xt::xarray<T>& pixels, const xt::xarray<T>& noise);
  // log q(u | pixels) of given u in (0, 1), through the inverse: (B,).
  Tensor<T> log_q(const xt::xarray<T>& pixels, const Tensor<T>& u);

  std::shared_ptr<nn::Sequential<T>> features;  // pixels -> hidden channels
  std::shared_ptr<FlowSequence<T>> couplings;   // on eps, conditioned on the features

 private:
  void condition_on(const xt::xarray<T>& pixels);  // sets the couplings' context
  Tensor<T> to_flow(const Tensor<T>& image) const;  // squeezed when config().squeeze
  Tensor<T> to_image(const Tensor<T>& values) const;
  DequantizerConfig config_;
  std::shared_ptr<Tensor<T>> context_ = std::make_shared<Tensor<T>>();
};

}  // namespace flowgrad::flows
