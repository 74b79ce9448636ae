// `flowgrad interpolate RUN_DIR_or_CHECKPOINT --out FILE.png`: pairs of test images are
// encoded, every latent (each scale's factored-out part and the top) is moved along the
// straight line between the pair's latents, and the points are decoded: one row per pair,
// the pair's own reconstructions at both ends. Works for NICE, Real NVP and Glow alike.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "apps/commands.hpp"
#include "apps/run.hpp"
#include "autograd/parallel.hpp"
#include "datasets/batching.hpp"
#include "datasets/png.hpp"

namespace flowgrad::app {

namespace {

struct InterpolateArgs {
  std::string run, out, data_dir;
  std::size_t pairs = 4, steps = 8, first = 0;
  int threads = 0;
};

void run_interpolate(const InterpolateArgs& a) {
  if (a.pairs == 0) throw UsageError("--pairs must be positive, got 0");
  if (a.steps < 2) throw UsageError("--steps must be at least 2 (the two ends), got " + std::to_string(a.steps));
  set_num_threads(a.threads);
  LoadedModel lm = load_model_for_inference(a.run);
  const ModelConfig& mc = lm.config.model;
  const data::ImageDataset test =
      data::load_dataset(lm.config.train.dataset, a.data_dir.empty() ? lm.config.train.data_dir : a.data_dir, "test");
  check_image_shape(mc, test);
  if (a.first + 2 * a.pairs > test.size())
    throw UsageError("--first " + std::to_string(a.first) + " with --pairs " + std::to_string(a.pairs) + " needs test images " +
                     std::to_string(a.first) + ".." + std::to_string(a.first + 2 * a.pairs - 1) + ", but " +
                     test.source + " has " + std::to_string(test.size()));
  NoGrad no_grad;
  xt::xarray<float> x = data::dequantize_fixed<float>(test, a.first, 2 * a.pairs);
  to_model_shape(x, *lm.model);
  const flows::Latents<float> lat = lm.model->forward(Tensor<float>(x));

  // Row p, column s: (1 - t) z(2p) + t z(2p+1), t = s / (steps - 1), for every latent.
  const std::size_t rows = a.pairs * a.steps;
  std::vector<Tensor<float>> zs;
  for (const auto& z : lat.zs) {
    const auto& v = z.value();
    const std::size_t per = v.size() / v.shape()[0];
    Shape shape = z.shape();
    shape[0] = rows;
    xt::xarray<float> line = xt::xarray<float>::from_shape(shape);
    for (std::size_t p = 0; p < a.pairs; ++p)
      for (std::size_t s = 0; s < a.steps; ++s) {
        const float t = float(s) / float(a.steps - 1);
        const float* za = v.data() + (2 * p) * per;
        const float* zb = v.data() + (2 * p + 1) * per;
        float* out = line.data() + (p * a.steps + s) * per;
        for (std::size_t i = 0; i < per; ++i) out[i] = (1 - t) * za[i] + t * zb[i];
      }
    zs.emplace_back(std::move(line));
  }
  xt::xarray<float> decoded = lm.model->inverse(zs).y.value();

  // The ends must give back the images: a check that the model is invertible where it matters.
  double worst = 0;
  const std::size_t per = x.size() / x.shape()[0];
  for (std::size_t p = 0; p < a.pairs; ++p)
    for (std::size_t end = 0; end < 2; ++end) {
      const float* orig = x.data() + (2 * p + end) * per;
      const float* back = decoded.data() + (p * a.steps + (end ? a.steps - 1 : 0)) * per;
      for (std::size_t i = 0; i < per; ++i) worst = std::max(worst, double(std::fabs(orig[i] - back[i])));
    }
  to_image_shape(decoded, mc);
  const std::size_t bad = data::write_image_grid<float>(a.out, decoded, a.steps);
  std::printf("wrote %s: %zu rows (test images %zu..%zu in pairs) x %zu points, %s (step %lld)\n", a.out.c_str(),
              a.pairs, a.first, a.first + 2 * a.pairs - 1, a.steps, describe(mc).c_str(), (long long)lm.step);
  std::printf("reconstruction error at the ends: %.3g (max abs, pixel scale 0..1)\n", worst);
  if (bad) std::printf("%zu of %zu decoded images were not finite and are drawn as grey tiles\n", bad, rows);
}

}  // namespace

void add_interpolate_command(CLI::App& app) {
  auto a = std::make_shared<InterpolateArgs>();
  CLI::App* cmd = app.add_subcommand("interpolate", "Decode points on the line between the latents of two test images");
  cmd->add_option("run", a->run, "A run directory (its checkpoint.safetensors) or a checkpoint file")->required();
  cmd->add_option("--out", a->out, "PNG file to write")->required();
  cmd->add_option("--pairs", a->pairs, "Pairs of test images, one row each")->check(non_negative())->capture_default_str();
  cmd->add_option("--steps", a->steps, "Points per row, both ends included")->check(non_negative())->capture_default_str();
  cmd->add_option("--first", a->first, "Index of the first test image")->check(non_negative())->capture_default_str();
  cmd->add_option("--data-dir", a->data_dir, "Folder of the dataset's files (default: the run's)");
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)")->capture_default_str()->check(non_negative());
  cmd->callback([a] { run_interpolate(*a); });
}

}  // namespace flowgrad::app
