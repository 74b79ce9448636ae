// The model a run configuration describes (validated first).
#pragma once

#include <memory>

#include "apps/run_config.hpp"
#include "flows/model.hpp"

namespace flowgrad::app {

std::shared_ptr<flows::FlowModel<float>> build_model(const ModelConfig& m);

}  // namespace flowgrad::app
