#include "apps/build_model.hpp"

#include "flows/glow.hpp"
#include "flows/nice.hpp"
#include "flows/realnvp.hpp"

namespace flowgrad::app {

namespace {
std::shared_ptr<flows::FlowModel<float>> build_flow(const ModelConfig& m) {
  if (m.name == "glow") {
    flows::GlowConfig c;
    c.channels = m.channels, c.height = m.height, c.width = m.width;
    c.levels = m.levels, c.steps = m.flow_steps, c.hidden = m.hidden;
    c.affine = !m.additive, c.learn_top = m.learn_top, c.logit_alpha = m.logit_alpha;
    c.scale_clamp = m.scale_clamp, c.net_actnorm = m.net_actnorm, c.prior_scale_cap = m.prior_scale_cap;
    c.classes = m.classes, c.class_per_position = m.class_shift == "position", c.class_splits = m.class_splits;
    return std::make_shared<flows::Glow<float>>(c);
  }
  if (m.name == "realnvp") {
    flows::RealNVPConfig c;
    c.channels = m.channels, c.height = m.height, c.width = m.width;
    c.scales = m.levels, c.checkerboard = m.couplings, c.channelwise = m.couplings;
    c.final_couplings = m.couplings + 1, c.mid = m.hidden, c.blocks = m.blocks;
    c.logit_alpha = m.logit_alpha;
    return std::make_shared<flows::RealNVP<float>>(c);
  }
  flows::NICEConfig c;
  c.dim = m.dims(), c.hidden = m.hidden, c.layers = m.layers, c.couplings = m.couplings;
  c.prior = m.prior == "gaussian" ? flows::NICEConfig::Prior::Gaussian : flows::NICEConfig::Prior::Logistic;
  c.logit_alpha = m.logit_alpha;
  return std::make_shared<flows::NICE<float>>(c);
}
}  // namespace

std::shared_ptr<flows::FlowModel<float>> build_model(const ModelConfig& m) {
  validate_model(m);
  auto model = build_flow(m);
  if (m.dequantization == "variational")
    model->set_dequantizer(std::make_shared<flows::VariationalDequantizer<float>>(
        flows::DequantizerConfig{m.channels, m.height, m.width, m.dequant_hidden, 4,
                                 m.height % 2 == 0 && m.width % 2 == 0}));
  return model;
}

}  // namespace flowgrad::app
