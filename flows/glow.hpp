// Glow (Kingma & Dhariwal 2018), as the reference: L levels of [squeeze, K steps of
// (ActNorm, invertible 1x1 conv, coupling)], each level but the last followed by a split
// that keeps the first half of the channels and models the second half with a learned
// conditional Gaussian (ZeroConv2d prior). Top prior N(0, I), or learned (per channel).
// Names as the reference: levels.{l}.{k}.{0,1,2}.*, priors.{l}.*; top_prior.{mean,logs}
// when learned (not in the bench config).
#pragma once

#include <memory>

#include "flows/flow.hpp"
#include "flows/model.hpp"

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

  static GlowConfig bench() { return {}; }  // the reference's Glow: 433,968 parameters
};

template <class T = float>
class Glow : public FlowModel<T> {
 public:
  explicit Glow(const GlowConfig& config = GlowConfig::bench());
  const GlowConfig& config() const { return config_; }

  std::shared_ptr<ModuleList<T>> levels;  // levels.{l} is a FlowSequence of steps
  std::shared_ptr<ModuleList<T>> priors;  // ZeroConv2d(c/2, c) per split
  Tensor<T> top_mean, top_logs;           // defined when learn_top

 private:
  GlowConfig config_;
};

}  // namespace flowgrad::flows
