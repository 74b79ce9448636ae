// Glow (Kingma & Dhariwal 2018), as the reference: L levels of [squeeze, K steps of
// (ActNorm, invertible 1x1 conv, coupling)], each level but the last followed by a split
// that keeps the first half of the channels and models the second half with a learned
// conditional Gaussian (ZeroConv2d prior). Top prior N(0, I), or learned (per channel).
// Names as the reference: levels.{l}.{k}.{0,1,2}.*, priors.{l}.*; top_prior.{mean,logs}
// when learned (not in the bench config). Class-conditional (classes > 0, openai/glow's
// ycond): a zero-initialised linear map top_prior.class_map from the one-hot class to a
// shift of the top prior's mean and log-scale, per channel (ycond) or per position; with
// class_splits, maps class_maps.{l} shift the split priors' outputs the same way.
#pragma once

#include <memory>

#include "flows/flow.hpp"
#include "flows/model.hpp"
#include "nn/linear.hpp"
#include "nn/sequential.hpp"

namespace flowgrad::flows {

struct GlowConfig {
  std::size_t channels = 1, height = 28, width = 28;
  std::size_t levels = 2;     // L
  std::size_t steps = 8;      // K per level
  std::size_t hidden = 128;   // coupling net width
  bool lu = true;             // LU-parameterised 1x1 conv, else a dense W with an LU slogdet
  bool affine = true;         // affine coupling, else additive
  bool learn_top = false;     // learned per-channel mean and log-scale of the top prior
  double logit_alpha = 0;     // > 0: a Logit layer first (the bench config has none)
  double scale_clamp = 0;     // affine scale: 0 sigmoid(h + 2); c > 0 exp(c tanh(h / c)), see GlowCoupling
  bool net_actnorm = false;   // ActNorm after each hidden conv of the coupling nets (openai/glow)
  double prior_scale_cap = 0; // split priors' sigma < e^c (soft); 0 unbounded, see Split
  std::size_t classes = 0;    // > 0: the top prior is conditioned on the class (a context of one-hot rows)
  bool class_per_position = false;  // the class shifts each position's mean and log-scale, not each channel's
  bool class_splits = false;        // the split priors are conditioned on the class too

  static GlowConfig bench() { return {}; }  // the reference's Glow: 433,968 parameters
};

// A coupling's net, as the reference's GlowCoupling.net:
//   Sequential(conv3x3(in -> hidden, pad 1), ReLU, conv1x1(hidden -> hidden), ReLU,
//              ZeroConv2d(hidden -> out))
// named 0.*, 2.*, 4.logs, 4.conv.*. With actnorm, as openai/glow: each hidden conv has no
// bias and is followed by an ActNormLayer (0 conv, 1 actnorm, 2 ReLU, 3 conv, 4 actnorm,
// 5 ReLU, 6 ZeroConv2d).
template <class T = float>
std::shared_ptr<nn::Sequential<T>> glow_coupling_net(std::size_t in, std::size_t out, std::size_t hidden,
                                                     bool actnorm = false);

template <class T = float>
class Glow : public FlowModel<T> {
 public:
  explicit Glow(const GlowConfig& config = GlowConfig::bench());
  const GlowConfig& config() const { return config_; }

  std::shared_ptr<ModuleList<T>> levels;  // levels.{l} is a FlowSequence of steps
  std::shared_ptr<ModuleList<T>> priors;  // ZeroConv2d(c/2, c) per split
  Tensor<T> top_mean, top_logs;           // defined when learn_top
  std::shared_ptr<nn::Linear<T>> class_map;  // classes -> 2 x top channels (x H x W), when classes > 0
  std::shared_ptr<ModuleList<T>> class_maps;  // the split priors', when class_splits

  std::size_t classes() const override { return config_.classes; }

 protected:
  std::shared_ptr<Distribution<T>> top_prior_given(const Tensor<T>& context) const override;

 private:
  GlowConfig config_;
};

}  // namespace flowgrad::flows
