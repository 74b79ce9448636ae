// `flowgrad sample RUN_DIR_or_CHECKPOINT --out FILE.png`: a grid of samples at a temperature.
#include <cmath>
#include <cstdio>

#include "apps/commands.hpp"
#include "apps/run.hpp"
#include "autograd/parallel.hpp"

namespace flowgrad::app {

namespace {

struct SampleArgs {
  std::string run, out;
  double temperature = 1.0;
  std::size_t n = 64;
  std::uint64_t seed = 0;
  int threads = 0;
};

void run_sample(const SampleArgs& a) {
  if (!(std::isfinite(a.temperature) && a.temperature >= 0))
    throw UsageError("--temperature must be a number >= 0, got " + std::to_string(a.temperature));
  if (a.n == 0 || a.n > 10000) throw UsageError("--n must be in 1..10000, got " + std::to_string(a.n));
  set_num_threads(a.threads);
  LoadedModel lm = load_model_for_inference(a.run);
  const std::size_t bad = write_samples(*lm.model, lm.config.model, a.out, a.n, a.temperature, a.seed);
  std::printf("wrote %s: %zu samples at temperature %g from %s (step %lld)\n", a.out.c_str(), a.n, a.temperature,
              describe(lm.config.model).c_str(), (long long)lm.step);
  if (bad) std::printf("%zu of %zu samples were not finite and are drawn as grey tiles\n", bad, a.n);
  else std::printf("all %zu samples finite\n", a.n);
}

}  // namespace

void add_sample_command(CLI::App& app) {
  auto a = std::make_shared<SampleArgs>();
  CLI::App* cmd = app.add_subcommand("sample", "Draw samples from a trained model into a PNG grid");
  cmd->add_option("run", a->run, "A run directory (its checkpoint.safetensors) or a checkpoint file")->required();
  cmd->add_option("--out", a->out, "PNG file to write")->required();
  cmd->add_option("--temperature", a->temperature, "Scales the prior's standard deviation (0.7 looks cleaner)")
      ->capture_default_str();
  cmd->add_option("--n", a->n, "Number of samples")->check(non_negative())->capture_default_str();
  cmd->add_option("--seed", a->seed, "Random seed")->check(non_negative())->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)")->capture_default_str()->check(non_negative());
  cmd->callback([a] { run_sample(*a); });
}

}  // namespace flowgrad::app
