// `flowgrad eval RUN_DIR_or_CHECKPOINT`: test bits/dim of a trained model on the whole
// test set, with the same fixed dequantization noise as the evaluations during training.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "apps/commands.hpp"
#include "apps/run.hpp"
#include "autograd/parallel.hpp"

namespace flowgrad::app {

namespace {

struct EvalArgs {
  std::string run, dataset, data_dir;
  std::size_t batch = 500;
  std::size_t samples = 1;  // draws from a variational dequantizer per image
  int threads = 0;
};

void run_eval(const EvalArgs& a) {
  if (a.batch == 0) throw UsageError("--batch must be positive, got 0");
  if (a.samples == 0) throw UsageError("--samples must be positive, got 0");
  set_num_threads(a.threads);
  LoadedModel lm = load_model_for_inference(a.run);
  const std::string dataset = a.dataset.empty() ? lm.config.train.dataset : a.dataset;
  std::string dir = a.data_dir.empty() ? lm.config.train.data_dir : a.data_dir;
  if (!a.dataset.empty() && a.data_dir.empty() && dataset != lm.config.train.dataset) dir.clear();
  const data::ImageDataset test = data::load_dataset(dataset, dir, "test");
  check_image_shape(lm.config.model, test);
  const auto t0 = std::chrono::steady_clock::now();
  const bool variational = lm.model->dequantizer() != nullptr;
  if (a.samples > 1 && !variational)
    throw UsageError("--samples " + std::to_string(a.samples) + ": the run dequantizes with uniform noise, evaluated with the test split's fixed noise");
  const TestScores scores = test_scores(*lm.model, test, a.batch, SIZE_MAX, nn::single_process(), a.samples);
  const double bpd = scores.bpd;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("model: %s (step %lld of %s)\n", describe(lm.config.model).c_str(), (long long)lm.step, lm.path.c_str());
  std::printf("test bits/dim: %.4f%s (%s: %s images, %.1f s)\n", bpd, lm.config.model.classes ? " given the true class" : "",
              test.source.c_str(), with_commas(test.size()).c_str(), s);
  if (variational)
    std::printf("variational dequantization: the bound with %zu sample%s of u ~ q(u | x) per image%s\n", a.samples,
                a.samples == 1 ? "" : "s", a.samples > 1 ? " (importance-weighted)" : "");
  if (lm.config.model.classes) {
    std::printf("marginal test bits/dim: %.4f (log p(x) = logsumexp over the %zu classes of log p(x | y) + log 1/%zu)\n",
                scores.marginal_bpd, lm.config.model.classes, lm.config.model.classes);
    std::printf("generative classifier: %.2f%% of the test images (argmax over y of log p(x | y))\n", 100 * scores.accuracy);
  }
  if (!std::isfinite(bpd)) throw std::runtime_error("test bits/dim is not finite: the model assigns some test image zero density");
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Print the test bits/dim of a trained model");
  cmd->add_option("run", a->run, "A run directory (its checkpoint.safetensors) or a checkpoint file")->required();
  cmd->add_option("--dataset", a->dataset, "Evaluate on another dataset of the same image size (default: the run's)")
      ->check(CLI::IsMember({"fashion-mnist", "mnist", "cifar10"}));
  cmd->add_option("--data-dir", a->data_dir, "Folder of the dataset's files (default: the run's)");
  cmd->add_option("--batch", a->batch, "Images per forward pass")->check(non_negative())->capture_default_str();
  cmd->add_option("--samples", a->samples,
                  "Variational dequantization: draws of u ~ q per image, importance-weighted (the bound tightens with more)")
      ->check(non_negative())->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)")->capture_default_str()->check(non_negative());
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace flowgrad::app
