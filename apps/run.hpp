// What the subcommands share: finding and reading a run's checkpoint, the model's view
// of a batch of images, test bits/dim over a whole test set, and sample grids.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <xtensor/xarray.hpp>

#include "apps/run_config.hpp"
#include "datasets/dataset.hpp"
#include "flows/model.hpp"
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
// max_batches, over the first batches only.
double test_bits_per_dim(flows::FlowModel<float>& model, const data::ImageDataset& test,
                         std::size_t batch_size = 500, std::size_t max_batches = SIZE_MAX);

// n samples at a temperature drawn from a generator seeded with `seed` (the process-wide
// generator is put back afterwards, so sampling never changes a training run), written as
// a grid. Returns how many samples were not finite (drawn as grey tiles).
std::size_t write_samples(flows::FlowModel<float>& model, const ModelConfig& m, const std::string& path,
                          std::size_t n, double temperature, std::uint64_t seed);

// "12,345"
std::string with_commas(std::size_t n);

}  // namespace flowgrad::app
