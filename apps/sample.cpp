// `flowgrad sample RUN_DIR_or_CHECKPOINT --out FILE.png`: a grid of samples at a temperature.
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <vector>

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
  int class_id = -1;       // a class-conditional model: samples of this class; -1: a row per class
  std::size_t per_class = 8;
};

void run_sample(const SampleArgs& a) {
  if (!(std::isfinite(a.temperature) && a.temperature >= 0))
    throw UsageError("--temperature must be a number >= 0, got " + std::to_string(a.temperature));
  if (a.n == 0 || a.n > 10000) throw UsageError("--n must be in 1..10000, got " + std::to_string(a.n));
  set_num_threads(a.threads);
  LoadedModel lm = load_model_for_inference(a.run);
  const std::size_t classes = lm.config.model.classes;
  if (a.class_id >= 0 && (classes == 0 || std::size_t(a.class_id) >= classes))
    throw UsageError(classes ? "--class " + std::to_string(a.class_id) + ": the model has classes 0.." + std::to_string(classes - 1)
                             : "--class: " + lm.path + " is not a class-conditional model");
  if (classes && a.class_id < 0 && (a.per_class == 0 || a.per_class > 1000))
    throw UsageError("--per-class must be in 1..1000, got " + std::to_string(a.per_class));
  // A class-conditional model without --class: a row of --per-class samples for each class.
  const std::vector<std::uint8_t> labels = !classes         ? std::vector<std::uint8_t>{}
                                           : a.class_id >= 0 ? std::vector<std::uint8_t>(a.n, std::uint8_t(a.class_id))
                                                             : rows_of_classes(classes, a.per_class);
  const std::size_t n = labels.empty() ? a.n : labels.size();
  const std::size_t bad = write_samples(*lm.model, lm.config.model, a.out, n, a.temperature, a.seed, labels,
                                        classes && a.class_id < 0 ? a.per_class : 0);
  std::printf("wrote %s: %zu samples at temperature %g from %s (step %lld)%s\n", a.out.c_str(), n, a.temperature,
              describe(lm.config.model).c_str(), (long long)lm.step,
              !classes ? "" : a.class_id >= 0 ? (", class " + std::to_string(a.class_id)).c_str() : ", a row per class");
  if (bad) std::printf("%zu of %zu samples were not finite and are drawn as grey tiles\n", bad, n);
  else std::printf("all %zu samples finite\n", n);
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
  cmd->add_option("--class", a->class_id, "A class-conditional model: samples of this class (default: a row per class)")
      ->check(non_negative());
  cmd->add_option("--per-class", a->per_class, "A class-conditional model without --class: samples in each row")
      ->check(non_negative())->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)")->capture_default_str()->check(non_negative());
  cmd->callback([a] { run_sample(*a); });
}

}  // namespace flowgrad::app
