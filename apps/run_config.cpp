#include "apps/run_config.hpp"

#include <cmath>
#include <cstdio>
#include <vector>

#include "flows/glow.hpp"
#include "flows/nice.hpp"
#include "flows/realnvp.hpp"

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
  if (!m.prior.empty() && !nice) foreign.push_back("--prior");
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
  if (m.channels == 0 || m.height == 0 || m.width == 0) join(problems, "an empty image size " + image_str(m));
  if (m.hidden == 0) join(problems, "--hidden must be positive");
  if (!(m.logit_alpha >= 0 && m.logit_alpha < 0.5))
    join(problems, "--logit-alpha must be in [0, 0.5), got " + num(m.logit_alpha));
  if (!(m.scale_clamp >= 0 && m.scale_clamp <= 20))
    join(problems, "--scale-clamp must be in [0, 20] (0: sigmoid(h + 2)), got " + num(m.scale_clamp));
  const std::size_t fit = halvings(m.height, m.width);
  if (m.name == "glow") {
    if (m.levels == 0) join(problems, "--levels must be positive");
    else if (m.levels > fit)
      join(problems, "glow with " + std::to_string(m.levels) + " levels does not fit " + image_str(m) +
                         " images: each level halves height and width, so both must be divisible by 2^" +
                         std::to_string(m.levels) + " = " + std::to_string(std::size_t(1) << m.levels) +
                         " (at most --levels " + std::to_string(fit) + " here)");
    if (m.flow_steps == 0) join(problems, "--flow-steps must be positive");
  } else if (m.name == "realnvp") {
    if (m.levels == 0) join(problems, "--levels must be positive");
    else if (m.levels - 1 > fit)
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
  if (t.warmup < 0) join(problems, "--warmup must be >= 0 steps, got " + std::to_string(t.warmup));
  if (!(std::isfinite(t.clip) && t.clip >= 0))
    join(problems, "--clip must be >= 0 (0 turns clipping off), got " + num(t.clip));
  if (!(std::isfinite(t.minutes) && t.minutes >= 0))
    join(problems, "--minutes must be >= 0, got " + num(t.minutes));
  if (!problems.empty()) throw UsageError(problems);
}

std::shared_ptr<flows::FlowModel<float>> build_model(const ModelConfig& m) {
  validate_model(m);
  if (m.name == "glow") {
    flows::GlowConfig c;
    c.channels = m.channels, c.height = m.height, c.width = m.width;
    c.levels = m.levels, c.steps = m.flow_steps, c.hidden = m.hidden;
    c.affine = !m.additive, c.learn_top = m.learn_top, c.logit_alpha = m.logit_alpha;
    c.scale_clamp = m.scale_clamp, c.net_actnorm = m.net_actnorm;
    return std::make_shared<flows::Glow<float>>(c);
  }
  if (m.name == "realnvp") {
    flows::RealNVPConfig c;
    c.channels = m.channels, c.height = m.height, c.width = m.width;
    c.scales = m.levels, c.checkerboard = m.couplings, c.channelwise = m.couplings;
    c.final_couplings = m.couplings + 1, c.mid = m.hidden, c.blocks = m.blocks;
    c.logit_alpha = m.logit_alpha;
    return std::make_shared<flows::RealNVP<float>>(c);
  }
  flows::NICEConfig c;
  c.dim = m.dims(), c.hidden = m.hidden, c.layers = m.layers, c.couplings = m.couplings;
  c.prior = m.prior == "gaussian" ? flows::NICEConfig::Prior::Gaussian : flows::NICEConfig::Prior::Logistic;
  c.logit_alpha = m.logit_alpha;
  return std::make_shared<flows::NICE<float>>(c);
}

std::string describe(const ModelConfig& m) {
  std::string s = m.name + (m.bench ? " (bench config)" : "") + ": ";
  if (m.name == "glow")
    s += std::to_string(m.levels) + " levels x " + std::to_string(m.flow_steps) + " steps, hidden " +
         std::to_string(m.hidden) + (m.net_actnorm ? " with ActNorm" : "") +
         (m.additive ? ", additive coupling"
                     : m.scale_clamp > 0 ? ", affine coupling (scale clamped to e^+-" + num(m.scale_clamp) + ")"
                                         : ", affine coupling (sigmoid scale)") +
         (m.learn_top ? ", learned top prior" : "");
  else if (m.name == "realnvp")
    s += std::to_string(m.levels) + " scales, " + std::to_string(m.couplings) + " couplings per stage, ResNet " +
         std::to_string(m.blocks) + " blocks x " + std::to_string(m.hidden);
  else
    s += std::to_string(m.couplings) + " couplings, MLP " + std::to_string(m.layers) + " x " +
         std::to_string(m.hidden) + ", " + m.prior + " prior";
  if (m.logit_alpha > 0) s += ", logit alpha " + num(m.logit_alpha);
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
            {"logit_alpha", m.logit_alpha}, {"scale_clamp", m.scale_clamp}, {"net_actnorm", m.net_actnorm}}},
          {"train",
           {{"dataset", t.dataset}, {"data_dir", t.data_dir}, {"batch", t.batch}, {"optimizer", t.optimizer},
            {"lr", t.lr}, {"weight_decay", t.weight_decay}, {"warmup", t.warmup}, {"lr_decay", t.lr_decay},
            {"ema", t.ema}, {"clip", t.clip}, {"clip_factor", t.clip_factor}, {"seed", t.seed}, {"flip", t.flip},
            {"epochs", t.epochs}, {"steps", t.steps}, {"minutes", t.minutes},
            {"eval_every", t.eval_every}, {"checkpoint_every", t.checkpoint_every}}}};
}

RunConfig run_config_from_json(const std::string& text, const std::string& source) {
  RunConfig c;
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.at("format") != "flowgrad-run-config-1")
      throw std::runtime_error("format " + j.at("format").dump() + ", expected \"flowgrad-run-config-1\"");
    const auto& m = j.at("model");
    const auto& t = j.at("train");
    ModelConfig& mc = c.model;
    mc.name = m.at("name").get<std::string>();
    mc.bench = m.at("bench").get<bool>();
    const auto image = m.at("image").get<std::vector<std::size_t>>();
    if (image.size() != 3) throw std::runtime_error("model.image has " + std::to_string(image.size()) + " values, expected 3");
    mc.channels = image[0], mc.height = image[1], mc.width = image[2];
    m.at("levels").get_to(mc.levels);
    m.at("flow_steps").get_to(mc.flow_steps);
    m.at("hidden").get_to(mc.hidden);
    m.at("couplings").get_to(mc.couplings);
    m.at("blocks").get_to(mc.blocks);
    m.at("layers").get_to(mc.layers);
    m.at("additive").get_to(mc.additive);
    m.at("learn_top").get_to(mc.learn_top);
    m.at("prior").get_to(mc.prior);
    m.at("logit_alpha").get_to(mc.logit_alpha);
    // Fields added later: their absence means the form runs had before them.
    mc.scale_clamp = m.value("scale_clamp", 0.0);
    mc.net_actnorm = m.value("net_actnorm", false);
    TrainConfig& tc = c.train;
    t.at("dataset").get_to(tc.dataset);
    t.at("data_dir").get_to(tc.data_dir);
    t.at("batch").get_to(tc.batch);
    t.at("lr").get_to(tc.lr);
    t.at("warmup").get_to(tc.warmup);
    t.at("clip").get_to(tc.clip);
    tc.optimizer = t.value("optimizer", std::string("adam"));
    tc.weight_decay = t.value("weight_decay", 0.0);
    tc.lr_decay = t.value("lr_decay", std::string("none"));
    tc.ema = t.value("ema", 0.0);
    tc.clip_factor = t.value("clip_factor", 0.0);
    t.at("seed").get_to(tc.seed);
    t.at("flip").get_to(tc.flip);
    t.at("epochs").get_to(tc.epochs);
    t.at("steps").get_to(tc.steps);
    t.at("minutes").get_to(tc.minutes);
    t.at("eval_every").get_to(tc.eval_every);
    t.at("checkpoint_every").get_to(tc.checkpoint_every);
  } catch (const std::exception& e) {
    throw std::runtime_error(source + ": the run configuration in its metadata is not valid: " + e.what());
  }
  return c;
}

}  // namespace flowgrad::app
