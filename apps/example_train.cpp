// The smallest complete training program, to copy: a Glow on IDX images (MNIST's format)
// with its own loop: batches, dequantization, loss in bits/dim, Adam, samples.
//   build/apps/example_train [IDX_DIR] [STEPS] [OUT.png]
//   (defaults: Debian's Fashion-MNIST, 300 steps, samples.png; about a minute on 2 cores)
// Built with MPI, the same loop runs data-parallel under mpirun (mpirun -np 2 ...): each
// rank trains on its rows of every batch, the gradients are summed, rank 0 writes.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "datasets/batching.hpp"
#include "datasets/idx.hpp"
#include "datasets/png.hpp"
#include "flows/bits_per_dim.hpp"
#include "flows/glow.hpp"
#include "nn/distributed.hpp"
#include "nn/optim.hpp"
#ifdef FLOWGRAD_HAVE_MPI
#include "nn/mpi/communicator.hpp"
#endif

using namespace flowgrad;

int train(nn::Communicator& group, int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : data::kFashionMnistDir;
  const long steps = argc > 2 ? std::atol(argv[2]) : 300;
  const std::string out = argc > 3 ? argv[3] : "samples.png";
  const data::ImageDataset train = data::load_idx_dataset(dir, "train");

  flows::GlowConfig config;  // 2 levels x 4 steps, as the app's small Glow but narrower
  config.height = train.height(), config.width = train.width(), config.channels = train.channels();
  config.steps = 4, config.hidden = 32, config.learn_top = true;
  config.logit_alpha = 1e-5, config.scale_clamp = 2, config.prior_scale_cap = 2;
  flows::Glow<float> model(config);
  nn::broadcast_state(model, group);  // every rank starts from rank 0's weights
  nn::Adam<float> adam(model.named_parameters(), 1e-3);

  manual_seed(0);  // the same batches and noise on every rank; each keeps its rows
  const std::size_t batch_size = std::min<std::size_t>(64, train.size());  // the readers refuse an empty set
  const data::Shard mine = data::shard_of(batch_size, std::size_t(group.rank()), std::size_t(group.size()));
  data::Batcher batches(train, {batch_size});
  data::Batch batch;
  for (long step = 1; step <= steps; ++step) {
    if (!batches.next(batch)) batches.next(batch);  // a new epoch
    const xt::xarray<float> all = data::dequantize<float>(batch.images);  // (pixel + u) / 256
    if (step == 1) model.initialize_from_data(Tensor<float>(all));  // ActNorm: from the whole batch
    Tensor<float> x(data::take_rows(all, mine));
    // Mean bits/dim of the whole batch: this rank's sum over the batch size; the ranks' sum below.
    Tensor<float> loss = sum(flows::bits_per_dim(model.log_prob(x), model.dims())) * (1.0f / float(batch_size));
    adam.zero_grad();
    loss.backward();
    nn::allreduce_gradients(model.named_parameters(), group);
    adam.set_lr(1e-3 * std::min(1.0, step / 50.0));  // linear warmup
    adam.step();
    double bpd = loss.item();
    group.allreduce_sum(&bpd, 1);
    if (group.is_root() && (step % 50 == 0 || step == 1)) std::printf("step %ld  %.3f bits/dim\n", step, bpd);
  }

  if (!group.is_root()) return 0;
  model.eval();
  const auto samples = model.sample(64, 0.7f);  // temperature 0.7
  data::write_image_grid(out, samples.value(), 8);
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

int main(int argc, char** argv) {
  std::unique_ptr<nn::Communicator> mpi;
#ifdef FLOWGRAD_HAVE_MPI
  if (nn::launched_by_mpirun()) mpi = std::make_unique<nn::MpiCommunicator>(&argc, &argv);
#endif
  nn::Communicator& group = mpi ? *mpi : nn::single_process();  // one process: every call is a no-op
  try {
    return train(group, argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "example_train: %s\n", e.what());
    group.abort(1);  // every rank: none may wait for this one
  }
}
