// What the subcommands share: finding and reading a run's checkpoint, the model's view
// of a batch of images, test bits/dim over a whole test set, and sample grids.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "apps/build_model.hpp"
#include "apps/run_config.hpp"
#include "datasets/dataset.hpp"
#include "flows/model.hpp"
#include "nn/distributed.hpp"
#include "nn/safetensors.hpp"

namespace flowgrad::app {

inline constexpr const char* kCheckpointName = "checkpoint.safetensors";
inline constexpr const char* kCheckpointFormat = "flowgrad-train-checkpoint-1";

// A run directory means RUN/checkpoint.safetensors; a file means itself. Throws
// std::runtime_error naming the path when there is no such file.
std::string resolve_checkpoint(const std::string& run_or_file);

// The configuration stored in a checkpoint's metadata; a clear error for a file that is
// not a training checkpoint (an export-check file, a bare module).
RunConfig read_run_config(const nn::Metadata& metadata, const std::string& path);

// A checkpoint's metadata, read strictly: a missing key, or a number that is not one (not
// all digits, out of range, negative for an unsigned N, or not finite) is an error naming
// the file and the key.
std::runtime_error metadata_error(const std::string& path, const std::string& key, const std::string& why);
std::string meta_text(const nn::Metadata& m, const std::string& key, const std::string& path);
template <class N>
N meta_number(const nn::Metadata& m, const std::string& key, const std::string& path) {
  const std::string text = meta_text(m, key, path);
  try {
    std::size_t used = 0;
    N v;
    if constexpr (std::is_floating_point_v<N>) v = N(std::stod(text, &used));
    else if constexpr (std::is_signed_v<N>) v = N(std::stoll(text, &used));
    else v = N(std::stoull(text, &used));
    const bool finite = !std::is_floating_point_v<N> || std::isfinite(double(v));
    if (used == text.size() && finite && (std::is_signed_v<N> || text.find('-') == std::string::npos)) return v;
  } catch (const std::exception&) {  // std::invalid_argument, std::out_of_range
  }
  throw metadata_error(path, key, "is not a valid " + std::string(std::is_floating_point_v<N> ? "finite " : "") +
                                      "number: '" + text.substr(0, 80) + "'");
}
// The same for a key that checkpoints written before it existed lack.
template <class N>
N meta_number_or(const nn::Metadata& m, const std::string& key, const std::string& path, N absent) {
  return m.count(key) ? meta_number<N>(m, key, path) : absent;
}

struct LoadedModel {
  std::string path;  // the checkpoint file
  RunConfig config;
  std::shared_ptr<flows::FlowModel<float>> model;  // in eval mode
  std::int64_t step = 0;
  bool averaged = false;  // the parameters are the run's moving average
};

// Builds the model its checkpoint describes and loads its parameters and buffers (the
// optimizer's state in the file is skipped); a run trained with --ema gets its averaged
// weights, which its evaluations used. A file whose tensors do not fit its own
// configuration is refused, every difference named.
LoadedModel load_model_for_inference(const std::string& run_or_file);

// The data set must have the image size the model was built for; throws UsageError
// otherwise ("model expects 1x28x28 images, DATA has 3x32x32").
void check_image_shape(const ModelConfig& m, const data::ImageDataset& d);

// (B, C, H, W) images -> the model's batch shape, e.g. (B, C*H*W) for NICE; and back.
void to_model_shape(xt::xarray<float>& images, const flows::FlowModel<float>& model);
void to_image_shape(xt::xarray<float>& values, const ModelConfig& m);

// Mean test bits/dim over the whole set with the fixed dequantization noise, in eval
// mode and without a tape; the model's training mode is restored afterwards. With
// max_batches, over the first batches only. In a group of processes the batches are dealt
// out over the ranks (every rank calls it, every rank gets the mean).
double test_bits_per_dim(flows::FlowModel<float>& model, const data::ImageDataset& test,
                         std::size_t batch_size = 500, std::size_t max_batches = SIZE_MAX,
                         nn::Communicator& group = nn::single_process());

// The same for a class-conditional model, with what it adds: bits/dim of log p(x | y) with
// the true label (bpd), of the marginal log p(x) = logsumexp_y log p(x | y) + log p(y)
// with p(y) uniform, and the generative classifier's accuracy, argmax_y log p(x | y). For
// an unconditional model bpd alone (the others NaN). With variational dequantization, of
// the bound with `samples` draws from q per image (importance-weighted over them:
// log mean_s p(x_s) / q(u_s | x); one sample is the training objective's bound).
struct TestScores {
  double bpd = NAN, marginal_bpd = NAN, accuracy = NAN;
};
TestScores test_scores(flows::FlowModel<float>& model, const data::ImageDataset& test, std::size_t batch_size = 500,
                       std::size_t max_batches = SIZE_MAX, nn::Communicator& group = nn::single_process(),
                       std::size_t samples = 1);

// n samples at a temperature drawn from a generator seeded with `seed` (the process-wide
// generator is put back afterwards, so sampling never changes a training run), written as
// a grid. A class-conditional model needs the class of each sample (n of them), and its
// grid has `columns` columns (0: a square grid). Returns how many samples were not finite
// (drawn as grey tiles).
std::size_t write_samples(flows::FlowModel<float>& model, const ModelConfig& m, const std::string& path,
                          std::size_t n, double temperature, std::uint64_t seed,
                          const std::vector<std::uint8_t>& classes = {}, std::size_t columns = 0);
// For a class-conditional model: `per_class` samples of each class, in class order (one
// grid row a class).
std::vector<std::uint8_t> rows_of_classes(std::size_t classes, std::size_t per_class);

// "12,345"
std::string with_commas(std::size_t n);

}  // namespace flowgrad::app
