// Real NVP (Dinh et al. 2016), multi-scale, as the reference: each scale but the last is
// `checkerboard` checkerboard couplings, squeeze, `channelwise` channel-wise couplings,
// then the FIRST half of the channels is factored out under N(0, I); the last scale is
// `final_couplings` checkerboard couplings. s/t nets are ResNetST(c, mid, blocks).
// Names as the reference: s1a.{i}.*, s1b.{i}.*, (s2a, s2b, ... for more scales), final.{i}.*
#pragma once

#include <memory>

#include "flows/flow.hpp"
#include "flows/model.hpp"

namespace flowgrad::flows {

struct RealNVPConfig {
  std::size_t channels = 1, height = 28, width = 28;
  std::size_t scales = 2;            // the last scale has no squeeze and no split
  std::size_t checkerboard = 3;      // per scale, before the squeeze
  std::size_t channelwise = 3;       // per scale, after the squeeze
  std::size_t final_couplings = 4;   // checkerboard couplings of the last scale
  std::size_t mid = 64, blocks = 4;  // ResNetST width and residual blocks
  double logit_alpha = 0;            // > 0: a Logit layer first (the bench config has none)

  static RealNVPConfig bench() { return {}; }  // the reference's RealNVP: 2,994,693 parameters
};

template <class T = float>
class RealNVP : public FlowModel<T> {
 public:
  explicit RealNVP(const RealNVPConfig& config = RealNVPConfig::bench());
  const RealNVPConfig& config() const { return config_; }

  // Per scale s (named "s{s+1}a" / "s{s+1}b"), and the last scale ("final").
  std::vector<std::shared_ptr<FlowSequence<T>>> before_squeeze, after_squeeze;
  std::shared_ptr<FlowSequence<T>> final;

 private:
  RealNVPConfig config_;
};

}  // namespace flowgrad::flows
