// `flowgrad export-check --model M --out FILE.safetensors`: a bench model's weights, an
// input batch, log p and gradients, for torch_flows.py --verify.
#include <cstdio>

#include "apps/commands.hpp"
#include "apps/run_config.hpp"
#include "flows/export_check.hpp"

namespace flowgrad::app {

void add_export_check_command(CLI::App& app) {
  struct Args {
    std::string model, out;
    std::uint64_t seed = 0;
    std::size_t batch = 4;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "export-check", "Write a bench model, an input batch, log p and gradients for torch_flows.py --verify");
  cmd->add_option("--model", a->model, "nice, realnvp or glow")->required()->check(CLI::IsMember({"nice", "realnvp", "glow"}));
  cmd->add_option("--out", a->out, "safetensors file to write")->required();
  cmd->add_option("--seed", a->seed, "Random seed")->check(non_negative())->capture_default_str();
  cmd->add_option("--batch", a->batch, "Examples in the input batch")->check(non_negative())->capture_default_str();
  cmd->callback([a] {
    if (a->batch == 0) throw UsageError("--batch must be positive, got 0");
    const flows::ExportCheckSummary s = flows::export_check(a->model, a->out, a->seed, a->batch);
    std::printf("wrote %s: %s bench config in float64, %zu parameters, %zu tensors\nlog p:", a->out.c_str(),
                s.model.c_str(), s.parameters, s.tensors);
    for (double v : s.logp) std::printf(" %.6f", v);
    std::printf("\ncheck it with: /usr/bin/python3 torch_flows.py --model %s --verify %s\n", s.model.c_str(),
                a->out.c_str());
  });
}

}  // namespace flowgrad::app
