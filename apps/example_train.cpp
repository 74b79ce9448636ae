// The smallest complete training program, to copy: a Glow on IDX images (MNIST's format)
// with its own loop: batches, dequantization, loss in bits/dim, Adam, samples.
//   build/apps/example_train [IDX_DIR] [STEPS] [OUT.png]
//   (defaults: Debian's Fashion-MNIST, 300 steps, samples.png; about a minute on 2 cores)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "datasets/batching.hpp"
#include "datasets/idx.hpp"
#include "datasets/png.hpp"
#include "flows/bits_per_dim.hpp"
#include "flows/glow.hpp"
#include "nn/optim.hpp"

using namespace flowgrad;

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : data::kFashionMnistDir;
  const long steps = argc > 2 ? std::atol(argv[2]) : 300;
  const std::string out = argc > 3 ? argv[3] : "samples.png";
  const data::ImageDataset train = data::load_idx_dataset(dir, "train");

  flows::GlowConfig config;  // 2 levels x 4 steps, as the app's small Glow but narrower
  config.height = train.height(), config.width = train.width(), config.channels = train.channels();
  config.steps = 4, config.hidden = 32, config.learn_top = true;
  config.logit_alpha = 1e-5, config.scale_clamp = 2, config.prior_scale_cap = 2;
  flows::Glow<float> model(config);
  nn::Adam<float> adam(model.named_parameters(), 1e-3);

  manual_seed(0);
  data::Batcher batches(train, {std::min<std::size_t>(64, train.size())});  // the readers refuse an empty set
  data::Batch batch;
  for (long step = 1; step <= steps; ++step) {
    if (!batches.next(batch)) batches.next(batch);  // a new epoch
    Tensor<float> x(data::dequantize<float>(batch.images));  // (pixel + u) / 256
    Tensor<float> loss = mean(flows::bits_per_dim(model.log_prob(x), model.dims()));
    adam.zero_grad();
    loss.backward();
    adam.set_lr(1e-3 * std::min(1.0, step / 50.0));  // linear warmup
    adam.step();
    if (step % 50 == 0 || step == 1) std::printf("step %ld  %.3f bits/dim\n", step, loss.item());
  }

  model.eval();
  const auto samples = model.sample(64, 0.7f);  // temperature 0.7
  data::write_image_grid(out, samples.value(), 8);
  std::printf("wrote %s\n", out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "example_train: %s\n", e.what());
  return 1;
}
