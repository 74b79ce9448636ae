#include "apps/run_config.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <type_traits>
#include <vector>


namespace flowgrad::app {

namespace {

std::string image_str(const ModelConfig& m) {
  return std::to_string(m.channels) + "x" + std::to_string(m.height) + "x" + std::to_string(m.width);
}

// The most halvings h and w both allow.
std::size_t halvings(std::size_t h, std::size_t w) {
  std::size_t n = 0;
  while (h && w && h % 2 == 0 && w % 2 == 0) h /= 2, w /= 2, ++n;
  return n;
}

void join(std::string& all, const std::string& one) { all += (all.empty() ? "" : "; ") + one; }

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Upper bounds: far above any model or run this machine can hold, low enough that no size
// product, shift or step count overflows and no allocation is sized by a typo or a
// tampered file.
constexpr std::size_t kMaxImageSide = 4096, kMaxChannels = 64, kMaxHidden = 4096, kMaxLevels = 16,
                      kMaxRepeats = 256, kMaxBatch = 65536;
constexpr std::size_t kMaxCount = std::size_t(1) << 53;  // steps and intervals: exact as doubles too
constexpr double kMaxMinutes = 1e6;

void at_most(std::string& problems, const char* option, std::size_t value, std::size_t max) {
  if (value > max)
    join(problems, std::string(option) + " must be at most " + std::to_string(max) + ", got " + std::to_string(value));
}

}  // namespace

void nominal_image_shape(const std::string& dataset, std::size_t& channels, std::size_t& height,
                         std::size_t& width) {
  if (dataset == "fashion-mnist" || dataset == "mnist")
    channels = 1, height = 28, width = 28;
  else if (dataset == "cifar10")
    channels = 3, height = 32, width = 32;
  else
    throw UsageError("unknown dataset '" + dataset + "': expected fashion-mnist, mnist or cifar10");
}

ModelSize size_for_budget(double minutes) { return minutes >= 30 ? ModelSize::Large : ModelSize::Small; }

const char* size_name(ModelSize s) { return s == ModelSize::Large ? "large" : "small"; }

void fill_model_defaults(ModelConfig& m, ModelSize size) {
  // Options that do not belong to the model are refused rather than ignored.
  std::vector<std::string> foreign;
  const bool glow = m.name == "glow", realnvp = m.name == "realnvp", nice = m.name == "nice";
  if (!glow && !realnvp && !nice)
    throw UsageError("unknown model '" + m.name + "': expected nice, realnvp or glow");
  if (m.levels && nice) foreign.push_back("--levels");
  if (m.flow_steps && !glow) foreign.push_back("--flow-steps");
  if (m.couplings && glow) foreign.push_back("--couplings");
  if (m.blocks && !realnvp) foreign.push_back("--blocks");
  if (m.layers && !nice) foreign.push_back("--layers");
  if (m.additive && !glow) foreign.push_back("--additive");
  if (m.learn_top && !glow) foreign.push_back("--learn-top");
  if (m.scale_clamp != 0 && !glow) foreign.push_back("--scale-clamp");
  if (m.net_actnorm && !glow) foreign.push_back("--net-actnorm");
  if (m.prior_scale_cap != 0 && !glow) foreign.push_back("--prior-scale-cap");
  if (m.classes != 0 && !glow) foreign.push_back("--conditional");
  if (!m.prior.empty() && !nice) foreign.push_back("--prior");
  if ((m.class_shift != "channel" || m.class_splits) && !m.classes)
    throw UsageError("--class-shift and --class-splits apply to a class-conditional model: add --conditional");
  if (!foreign.empty()) {
    std::string names;
    for (auto& f : foreign) names += (names.empty() ? "" : ", ") + f;
    throw UsageError(names + (foreign.size() > 1 ? " do" : " does") + " not apply to --model " + m.name);
  }
  if (m.bench) {
    const bool sized = m.levels || m.flow_steps || m.hidden || m.couplings || m.blocks || m.layers ||
                       m.additive || m.learn_top || !m.prior.empty() || m.scale_clamp != 0 || m.net_actnorm;
    if (sized) throw UsageError("--bench-config fixes the architecture: drop the size options given with it");
  }
  const std::size_t fit = halvings(m.height, m.width);
  auto set = [](std::size_t& field, std::size_t value) {
    if (!field) field = value;
  };
  // Small: the best measured for the main job's 4 minutes on 2 cores; large: for an hour
  // (docs/TRAINING.md).
  const bool large = size == ModelSize::Large;
  if (glow) {
    set(m.levels, m.bench ? 2 : (fit >= 3 && m.height >= 32 ? 3 : std::min<std::size_t>(std::max<std::size_t>(fit, 1), 2)));
    set(m.flow_steps, m.bench ? 8 : large ? 8 : 4);
    set(m.hidden, m.bench ? 128 : large ? 96 : 64);
  } else if (realnvp) {
    set(m.levels, m.bench ? 2 : (fit >= 1 ? 2 : 1));
    set(m.couplings, m.bench ? 3 : 2);
    set(m.hidden, m.bench ? 64 : large ? 64 : 32);
    set(m.blocks, m.bench ? 4 : 1);
  } else {
    set(m.hidden, m.bench ? 1000 : large ? 1000 : 500);
    set(m.layers, m.bench ? 5 : 4);
    set(m.couplings, 4);
    if (m.prior.empty()) m.prior = "logistic";
  }
}

void validate_model(const ModelConfig& m) {
  std::string problems;
  if (m.channels > kMaxChannels || m.height > kMaxImageSide || m.width > kMaxImageSide)
    join(problems, "images of " + image_str(m) + " exceed the largest size handled, " + std::to_string(kMaxChannels) +
                       "x" + std::to_string(kMaxImageSide) + "x" + std::to_string(kMaxImageSide));
  at_most(problems, "--hidden", m.hidden, kMaxHidden);
  at_most(problems, "--levels", m.levels, kMaxLevels);
  at_most(problems, "--flow-steps", m.flow_steps, kMaxRepeats);
  at_most(problems, "--couplings", m.couplings, kMaxRepeats);
  at_most(problems, "--blocks", m.blocks, kMaxRepeats);
  at_most(problems, "--layers", m.layers, kMaxRepeats);
  if (m.channels == 0 || m.height == 0 || m.width == 0) join(problems, "an empty image size " + image_str(m));
  if (m.hidden == 0) join(problems, "--hidden must be positive");
  if (!(m.logit_alpha >= 0 && m.logit_alpha < 0.5))
    join(problems, "--logit-alpha must be in [0, 0.5), got " + num(m.logit_alpha));
  if (!(m.scale_clamp >= 0 && m.scale_clamp <= 20))
    join(problems, "--scale-clamp must be in [0, 20] (0: sigmoid(h + 2)), got " + num(m.scale_clamp));
  if (!(m.prior_scale_cap >= 0 && m.prior_scale_cap <= 20))
    join(problems, "--prior-scale-cap must be in [0, 20] (0: unbounded), got " + num(m.prior_scale_cap));
  if (m.dequantization != "uniform" && m.dequantization != "variational")
    join(problems, "--dequantization must be uniform or variational, got '" + m.dequantization + "'");
  if (m.dequant_hidden == 0 || m.dequant_hidden > kMaxHidden)
    join(problems, "--dequant-hidden must be in [1, " + std::to_string(kMaxHidden) + "], got " + std::to_string(m.dequant_hidden));
  if (m.class_shift != "channel" && m.class_shift != "position")
    join(problems, "--class-shift must be channel or position, got '" + m.class_shift + "'");
  if (m.classes > 256) join(problems, "model.classes must be at most 256 (labels are bytes), got " + std::to_string(m.classes));
  const std::size_t fit = halvings(m.height, m.width);
  if (m.name == "glow") {
    if (m.levels == 0) join(problems, "--levels must be positive");
    else if (m.levels <= kMaxLevels && m.levels > fit)
      join(problems, "glow with " + std::to_string(m.levels) + " levels does not fit " + image_str(m) +
                         " images: each level halves height and width, so both must be divisible by 2^" +
                         std::to_string(m.levels) + " = " + std::to_string(std::size_t(1) << m.levels) +
                         " (at most --levels " + std::to_string(fit) + " here)");
    if (m.flow_steps == 0) join(problems, "--flow-steps must be positive");
  } else if (m.name == "realnvp") {
    if (m.levels == 0) join(problems, "--levels must be positive");
    else if (m.levels <= kMaxLevels && m.levels - 1 > fit)
      join(problems, "realnvp with " + std::to_string(m.levels) + " scales does not fit " + image_str(m) +
                         " images: each scale but the last halves height and width, so both must be divisible by 2^" +
                         std::to_string(m.levels - 1) + " (at most --levels " + std::to_string(fit + 1) + " here)");
    if (m.couplings == 0) join(problems, "--couplings must be positive");
    if (m.height * m.width < 2) join(problems, "realnvp needs images of at least 2 pixels");
  } else if (m.name == "nice") {
    if (m.dims() % 2) join(problems, "nice needs an even number of values per image, got " + image_str(m));
    if (m.layers == 0) join(problems, "--layers must be positive");
    if (m.couplings == 0) join(problems, "--couplings must be positive");
    if (m.prior != "logistic" && m.prior != "gaussian")
      join(problems, "--prior must be logistic or gaussian, got '" + m.prior + "'");
  } else {
    join(problems, "unknown model '" + m.name + "': expected nice, realnvp or glow");
  }
  if (!problems.empty()) throw UsageError(problems);
}

void validate_train(const TrainConfig& t) {
  std::string problems;
  if (t.batch == 0) join(problems, "--batch must be positive, got 0");
  at_most(problems, "--batch", t.batch, kMaxBatch);
  at_most(problems, "--epochs", t.epochs, kMaxCount);
  at_most(problems, "--steps", t.steps, kMaxCount);
  at_most(problems, "--eval-every", t.eval_every, kMaxCount);
  at_most(problems, "--checkpoint-every", t.checkpoint_every, kMaxCount);
  if (t.warmup > std::int64_t(kMaxCount)) join(problems, "--warmup must be at most " + std::to_string(kMaxCount) + " steps");
  if (t.optimizer != "adam" && t.optimizer != "adamw" && t.optimizer != "adamax")
    join(problems, "--optimizer must be adam, adamw or adamax, got '" + t.optimizer + "'");
  if (!(std::isfinite(t.lr) && t.lr > 0)) join(problems, "--lr must be a positive number, got " + num(t.lr));
  if (!(std::isfinite(t.weight_decay) && t.weight_decay >= 0))
    join(problems, "--weight-decay must be >= 0, got " + num(t.weight_decay));
  if (t.lr_decay != "none" && t.lr_decay != "cosine")
    join(problems, "--lr-decay must be none or cosine, got '" + t.lr_decay + "'");
  if (!(t.ema >= 0 && t.ema < 1)) join(problems, "--ema must be in [0, 1) (0: off), got " + num(t.ema));
  if (!(std::isfinite(t.clip_factor) && (t.clip_factor == 0 || t.clip_factor >= 1)))
    join(problems, "--clip-factor must be 0 (off) or >= 1, got " + num(t.clip_factor));
  if (!(std::isfinite(t.class_weight) && t.class_weight >= 0))
    join(problems, "--class-weight must be >= 0 (0: off), got " + num(t.class_weight));
  if (t.warmup < 0) join(problems, "--warmup must be >= 0 steps, got " + std::to_string(t.warmup));
  if (!(std::isfinite(t.clip) && t.clip >= 0))
    join(problems, "--clip must be >= 0 (0 turns clipping off), got " + num(t.clip));
  if (!(std::isfinite(t.minutes) && t.minutes >= 0 && t.minutes <= kMaxMinutes))
    join(problems, "--minutes must be in [0, 1e6], got " + num(t.minutes));
  if (!problems.empty()) throw UsageError(problems);
}

std::string describe(const ModelConfig& m) {
  std::string s = m.name + (m.bench ? " (bench config)" : "") + ": ";
  if (m.name == "glow")
    s += std::to_string(m.levels) + " levels x " + std::to_string(m.flow_steps) + " steps, hidden " +
         std::to_string(m.hidden) + (m.net_actnorm ? " with ActNorm" : "") +
         (m.additive ? ", additive coupling"
                     : m.scale_clamp > 0 ? ", affine coupling (scale clamped to e^+-" + num(m.scale_clamp) + ")"
                                         : ", affine coupling (sigmoid scale)") +
         (m.learn_top ? ", learned top prior" : "") +
         (m.prior_scale_cap > 0 ? ", split priors' sigma below e^" + num(m.prior_scale_cap) : "") +
         (m.classes > 0 ? ", conditioned on the class (" + std::to_string(m.classes) + " classes, " +
                              (m.class_splits ? "top and split priors" : "top prior") + " shifted per " + m.class_shift + ")"
                        : "");
  else if (m.name == "realnvp")
    s += std::to_string(m.levels) + " scales, " + std::to_string(m.couplings) + " couplings per stage, ResNet " +
         std::to_string(m.blocks) + " blocks x " + std::to_string(m.hidden);
  else
    s += std::to_string(m.couplings) + " couplings, MLP " + std::to_string(m.layers) + " x " +
         std::to_string(m.hidden) + ", " + m.prior + " prior";
  if (m.logit_alpha > 0) s += ", logit alpha " + num(m.logit_alpha);
  if (m.dequantization == "variational") s += ", variational dequantization (hidden " + std::to_string(m.dequant_hidden) + ")";
  return s + ", on " + image_str(m);
}

nlohmann::json to_json(const RunConfig& c) {
  const ModelConfig& m = c.model;
  const TrainConfig& t = c.train;
  return {{"format", "flowgrad-run-config-1"},
          {"model",
           {{"name", m.name}, {"bench", m.bench}, {"image", {m.channels, m.height, m.width}},
            {"levels", m.levels}, {"flow_steps", m.flow_steps}, {"hidden", m.hidden},
            {"couplings", m.couplings}, {"blocks", m.blocks}, {"layers", m.layers},
            {"additive", m.additive}, {"learn_top", m.learn_top}, {"prior", m.prior},
            {"logit_alpha", m.logit_alpha}, {"scale_clamp", m.scale_clamp}, {"net_actnorm", m.net_actnorm},
            {"prior_scale_cap", m.prior_scale_cap},
            {"classes", m.classes}, {"class_shift", m.class_shift}, {"class_splits", m.class_splits},
            {"dequantization", m.dequantization}, {"dequant_hidden", m.dequant_hidden}}},
          {"train",
           {{"dataset", t.dataset}, {"data_dir", t.data_dir}, {"batch", t.batch}, {"optimizer", t.optimizer},
            {"lr", t.lr}, {"weight_decay", t.weight_decay}, {"warmup", t.warmup}, {"lr_decay", t.lr_decay},
            {"ema", t.ema}, {"clip", t.clip}, {"clip_factor", t.clip_factor}, {"class_weight", t.class_weight}, {"seed", t.seed}, {"flip", t.flip},
            {"epochs", t.epochs}, {"steps", t.steps}, {"minutes", t.minutes},
            {"eval_every", t.eval_every}, {"checkpoint_every", t.checkpoint_every}}}};
}

namespace {

// Reads the values of one JSON object with the types their writer gave them: a count is a
// whole number >= 0 (never -1 or 1e30 cast to an unsigned), a real a number (JSON has no
// NaN); an error names the field, e.g. "model.hidden is -1, expected a whole number >= 0".
struct FieldReader {
  const nlohmann::json& object;
  std::string name;  // "model", "train"

  template <class T>
  void get(const char* key, T& out) const {
    if (!object.contains(key)) throw std::runtime_error(name + "." + key + " is missing");
    const auto& v = object.at(key);
    auto bad = [&](const char* expected) {
      return std::runtime_error(name + "." + key + " is " + v.dump().substr(0, 80) + ", expected " + expected);
    };
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) throw bad("true or false");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) throw bad("a string");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!v.is_number()) throw bad("a number");
    } else if constexpr (std::is_unsigned_v<T>) {
      if (!v.is_number_unsigned()) throw bad("a whole number >= 0");
    } else {
      static_assert(std::is_same_v<T, std::int64_t>);
      if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(INT64_MAX)))
        throw bad("a whole number");
    }
    v.get_to(out);
  }
  // A field that runs written before it existed lack: its absence means the old form.
  template <class T>
  void get_or(const char* key, T& out, T absent) const {
    if (object.contains(key)) get(key, out);
    else out = absent;
  }
};

}  // namespace

RunConfig run_config_from_json(const std::string& text, const std::string& source) {
  RunConfig c;
  try {
    const auto j = nlohmann::json::parse(text);
    if (!j.is_object() || !j.contains("format") || j.at("format") != "flowgrad-run-config-1")
      throw std::runtime_error("format " + (j.is_object() && j.contains("format") ? j.at("format").dump() : "missing") +
                               ", expected \"flowgrad-run-config-1\"");
    for (const char* part : {"model", "train"})
      if (!j.contains(part) || !j.at(part).is_object())
        throw std::runtime_error(std::string(part) + " is not an object");
    const FieldReader m{j.at("model"), "model"}, t{j.at("train"), "train"};
    ModelConfig& mc = c.model;
    m.get("name", mc.name);
    m.get("bench", mc.bench);
    const auto& image = j.at("model").at("image");
    if (!image.is_array() || image.size() != 3)
      throw std::runtime_error("model.image is not 3 numbers: " + image.dump().substr(0, 80));
    const nlohmann::json image_fields{{"channels", image[0]}, {"height", image[1]}, {"width", image[2]}};
    const FieldReader dims{image_fields, "model.image"};
    dims.get("channels", mc.channels), dims.get("height", mc.height), dims.get("width", mc.width);
    m.get("levels", mc.levels), m.get("flow_steps", mc.flow_steps), m.get("hidden", mc.hidden);
    m.get("couplings", mc.couplings), m.get("blocks", mc.blocks), m.get("layers", mc.layers);
    m.get("additive", mc.additive), m.get("learn_top", mc.learn_top), m.get("prior", mc.prior);
    m.get("logit_alpha", mc.logit_alpha);
    m.get_or("scale_clamp", mc.scale_clamp, 0.0);
    m.get_or("net_actnorm", mc.net_actnorm, false);
    m.get_or("prior_scale_cap", mc.prior_scale_cap, 0.0);
    m.get_or("classes", mc.classes, std::size_t(0));
    m.get_or("class_shift", mc.class_shift, std::string("channel"));
    m.get_or("class_splits", mc.class_splits, false);
    m.get_or("dequantization", mc.dequantization, std::string("uniform"));
    m.get_or("dequant_hidden", mc.dequant_hidden, std::size_t(16));
    TrainConfig& tc = c.train;
    t.get("dataset", tc.dataset), t.get("data_dir", tc.data_dir), t.get("batch", tc.batch);
    t.get("lr", tc.lr), t.get("warmup", tc.warmup), t.get("clip", tc.clip);
    t.get_or("optimizer", tc.optimizer, std::string("adam"));
    t.get_or("weight_decay", tc.weight_decay, 0.0);
    t.get_or("lr_decay", tc.lr_decay, std::string("none"));
    t.get_or("ema", tc.ema, 0.0);
    t.get_or("clip_factor", tc.clip_factor, 0.0);
    t.get_or("class_weight", tc.class_weight, 0.0);
    t.get("seed", tc.seed), t.get("flip", tc.flip);
    t.get("epochs", tc.epochs), t.get("steps", tc.steps), t.get("minutes", tc.minutes);
    t.get("eval_every", tc.eval_every), t.get("checkpoint_every", tc.checkpoint_every);
  } catch (const std::exception& e) {
    throw std::runtime_error(source + ": the run configuration in its metadata is not valid: " + e.what());
  }
  return c;
}

}  // namespace flowgrad::app
