// A training run's configuration: the model's architecture and the training recipe,
// their defaults, their validation, their JSON form (stored in every checkpoint's
// metadata, so a checkpoint rebuilds its own model); apps/build_model.hpp builds the model.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace flowgrad::app {

// A command line or configuration that cannot work; reported before any work is done.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// 0 (or "") in a size field means "the default for this model and image size".
struct ModelConfig {
  std::string name;            // nice, realnvp or glow
  bool bench = false;          // the reference's architecture (torch_flows.py), at the data's image size
  std::size_t channels = 1, height = 28, width = 28;
  std::size_t levels = 0;      // glow: L; realnvp: scales
  std::size_t flow_steps = 0;  // glow: K steps per level
  std::size_t hidden = 0;      // glow: coupling width; realnvp: ResNet width; nice: MLP width
  std::size_t couplings = 0;   // nice: couplings; realnvp: couplings per stage (the last scale has one more)
  std::size_t blocks = 0;      // realnvp: residual blocks per s/t net
  std::size_t layers = 0;      // nice: hidden layers per MLP
  bool additive = false;       // glow: additive coupling instead of affine
  bool learn_top = false;      // glow: learned top prior
  std::string prior;           // nice: logistic or gaussian
  double logit_alpha = 0;      // > 0: a logit layer first
  double scale_clamp = 0;      // glow: affine scale exp(c tanh(h / c)); 0 = sigmoid(h + 2), the reference's
  bool net_actnorm = false;    // glow: ActNorm in the coupling nets (openai/glow)
  double prior_scale_cap = 0;  // glow: split priors' sigma < e^c (soft); 0 = unbounded, the reference's
  std::size_t classes = 0;     // glow: > 0, the top prior is conditioned on the class (--conditional)
  std::string class_shift = "channel";  // glow, conditional: the class shifts each channel's or each position's prior
  bool class_splits = false;            // glow, conditional: the split priors are conditioned on the class too
  std::string dequantization = "uniform";  // or "variational": learned noise q(u | x) (Flow++)
  std::size_t dequant_hidden = 16;         // variational: width of q's nets

  std::size_t dims() const { return channels * height * width; }
};

// The defaults are the recipe docs/TRAINING.md measured. A field that a run configuration
// written before it existed lacks takes the value that gives the old behaviour (see
// run_config_from_json), so old runs keep their recipe.
struct TrainConfig {
  std::string dataset, data_dir;  // data_dir "" = the dataset's default place
  std::size_t batch = 64;
  std::string optimizer = "adam";  // adam, adamw or adamax
  double lr = 1e-3;                // the peak; a new run of the app gets its model's default
  double weight_decay = 0;         // adam, adamax: L2 added to the gradient; adamw: decoupled
  std::int64_t warmup = 200;       // steps of linear warmup
  std::string lr_decay = "cosine"; // after the warmup: none, or cosine to 0 at the end of the budget
  double ema = 0.999;              // decay of the parameters' moving average used for evaluation; 0 = none
  double clip = 0;                 // gradient-norm clipping at this norm; 0 = off
  double clip_factor = 5;          // clip norms above this factor x their running average; 0 = off
  double class_weight = 0;         // conditional: weight of the generative classifier's -log p(y | x) in the loss
  std::uint64_t seed = 0;
  bool flip = false;          // random left-right flips
  // Limits, counted over the whole run (a resumed run continues towards them); 0 = none.
  std::size_t epochs = 0, steps = 0;
  double minutes = 0;
  std::size_t eval_every = 0;        // steps between evaluations besides each epoch's end; 0 = none
  std::size_t checkpoint_every = 0;  // steps between checkpoints besides each evaluation; 0 = none
};

struct RunConfig {
  ModelConfig model;
  TrainConfig train;
};

// The image size a dataset is known to have (before its files are read).
void nominal_image_shape(const std::string& dataset, std::size_t& channels, std::size_t& height,
                         std::size_t& width);

// Default sizes by budget: the best model for the main job's 4 minutes is not the best
// for an hour (docs/TRAINING.md measures both). A time budget of 30 minutes or more gets
// the large sizes; any other budget the small ones.
enum class ModelSize { Small, Large };
ModelSize size_for_budget(double minutes);
const char* size_name(ModelSize s);

// Fills every 0 / "" size field with the default for the model, image size and size (or
// the bench architecture). Throws UsageError when --bench-config meets explicit sizes.
void fill_model_defaults(ModelConfig& m, ModelSize size = ModelSize::Small);
// Every problem of an architecture (a model that does not fit the image size, zero sizes,
// options that do not apply to the model), as one UsageError naming the options.
void validate_model(const ModelConfig& m);
void validate_train(const TrainConfig& t);

// "glow: 2 levels x 4 steps, hidden 64, affine coupling, on 1x28x28"
std::string describe(const ModelConfig& m);

nlohmann::json to_json(const RunConfig& c);
// Throws std::runtime_error naming `source` for a missing or mistyped field.
RunConfig run_config_from_json(const std::string& text, const std::string& source);

}  // namespace flowgrad::app
