// export-check: the data for cross-checking a bench model against the PyTorch reference
// (torch_flows.py --model NAME --verify FILE).
//
// Builds the bench config in float64 (ActNorm's data-dependent init off), perturbs every
// parameter by N(0, 0.01^2) so zero-initialised weights are not trivial, draws a batch of
// `batch` inputs in [0,1), computes log p per example and the gradient of mean(-log p),
// and writes one safetensors file with every reference parameter and buffer under its
// state_dict name, __input__, __logp__, and grad.NAME for every parameter.
// Seeds the process-wide generator with `seed` (initial weights, noise and inputs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flowgrad::flows {

struct ExportCheckSummary {
  std::string model;
  std::size_t parameters = 0;  // scalar parameters
  std::size_t tensors = 0;     // tensors written
  std::vector<double> logp;    // per example
};

ExportCheckSummary export_check(const std::string& model_name, const std::string& path,
                                std::uint64_t seed = 0, std::size_t batch = 4);

}  // namespace flowgrad::flows
