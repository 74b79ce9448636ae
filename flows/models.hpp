// The three models by name, and their bench configs (the reference's architectures).
#pragma once

#include <memory>
#include <string>

#include "flows/glow.hpp"
#include "flows/model.hpp"
#include "flows/nice.hpp"
#include "flows/realnvp.hpp"

namespace flowgrad::flows {

// "nice", "realnvp" or "glow" in its bench config; throws std::invalid_argument otherwise.
template <class T>
std::shared_ptr<FlowModel<T>> make_bench_model(const std::string& name) {
  if (name == "nice") return std::make_shared<NICE<T>>(NICEConfig::bench());
  if (name == "realnvp") return std::make_shared<RealNVP<T>>(RealNVPConfig::bench());
  if (name == "glow") return std::make_shared<Glow<T>>(GlowConfig::bench());
  throw std::invalid_argument("unknown model '" + name + "' (expected nice, realnvp or glow)");
}

}  // namespace flowgrad::flows
