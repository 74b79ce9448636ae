// `flowgrad train`: the reference's recipe (Adam, linear warmup, gradient-norm clipping,
// uniform or learned (variational) dequantization, ActNorm's data-dependent init on the
// first batch), test bits/dim on the whole test set each epoch, and a run directory that
// can be resumed exactly.
//
// A run directory holds config.json, metrics.jsonl, curve.svg, samples_T0.7.png,
// samples_T1.0.png and checkpoint.safetensors (model, Adam state, step, the three random
// generators and the position in the epoch; the config in its metadata). Everything is
// validated and the data loaded before the directory is created, so a bad command line
// or bad data leaves nothing behind.
//
// Under mpirun every rank trains on its shard of each global batch (the same images and
// noise one process at that batch would see), gradients are summed over the ranks, and
// rank 0 alone writes; what depends on the clock or a signal (stop, Ctrl-C, the planned
// schedule) rank 0 decides and tells the others after every step.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <type_traits>

#include "apps/commands.hpp"
#include "apps/curve_svg.hpp"
#include "apps/progress.hpp"
#include "apps/run.hpp"
#include "apps/run_dir.hpp"
#include "autograd/atomic_file.hpp"
#include "autograd/memory.hpp"
#include "autograd/parallel.hpp"
#include "autograd/random.hpp"
#include "autograd/reduce.hpp"
#include "autograd/shape.hpp"
#include "datasets/batching.hpp"
#include "flows/bits_per_dim.hpp"
#include "nn/checkpoint.hpp"
#include "nn/distributed.hpp"
#include "nn/ema.hpp"
#include "nn/optim.hpp"

namespace flowgrad::app {

namespace {

namespace fs = std::filesystem;

volatile std::sig_atomic_t g_interrupted = 0;

// The first signal asks for a checkpoint and a clean stop after the current step. A
// third one ends the program at once (not the second: `timeout` and a terminal may
// deliver the same signal twice, to the process and to its group).
extern "C" void on_interrupt(int sig) {
  g_interrupted = g_interrupted + 1;
  if (g_interrupted >= 3) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

struct TrainArgs {
  RunConfig config;
  std::string out, resume;
  std::string size = "auto";  // default sizes: small, large, or auto (by the time budget)
  int threads = 0;
  std::size_t debug_nan_at_step = 0;        // test hook: the loss of that step is NaN
  std::size_t debug_interrupt_at_step = 0;  // test hook: as if Ctrl-C came during that step
  std::size_t debug_nan_weights_at_step = 0;  // test hook: that step's update leaves a NaN weight
  double debug_step_seconds = 0;            // test hook: the step time a time budget plans with
  std::size_t debug_fail_at_step = 0;       // test hook: that step throws
  std::size_t debug_exit_at_step = 0;       // test hook: the process dies during that step
  int debug_rank = -1;                      // test hook: the hooks above act on this rank only (-1: all)
  bool hook(std::size_t at_step, std::int64_t step) const {
    return at_step && std::size_t(step + 1) == at_step && (debug_rank < 0 || debug_rank == process_group().rank());
  }
  std::map<std::string, CLI::Option*> options;
  bool given(const std::string& name) const {
    auto it = options.find(name);
    return it != options.end() && it->second->count() > 0;
  }
};

// Options a resumed run must keep: (option, section and key in the config's JSON).
const std::vector<std::pair<std::string, std::pair<const char*, const char*>>> kFixedOptions = {
    {"--model", {"model", "name"}},         {"--bench-config", {"model", "bench"}},
    {"--levels", {"model", "levels"}},      {"--flow-steps", {"model", "flow_steps"}},
    {"--hidden", {"model", "hidden"}},      {"--couplings", {"model", "couplings"}},
    {"--blocks", {"model", "blocks"}},      {"--layers", {"model", "layers"}},
    {"--additive", {"model", "additive"}},  {"--learn-top", {"model", "learn_top"}},
    {"--prior", {"model", "prior"}},        {"--logit-alpha", {"model", "logit_alpha"}},
    {"--dataset", {"train", "dataset"}},    {"--batch", {"train", "batch"}},
    {"--lr", {"train", "lr"}},              {"--warmup", {"train", "warmup"}},
    {"--clip", {"train", "clip"}},          {"--seed", {"train", "seed"}},
    {"--flip", {"train", "flip"}},          {"--optimizer", {"train", "optimizer"}},
    {"--weight-decay", {"train", "weight_decay"}}, {"--lr-decay", {"train", "lr_decay"}},
    {"--ema", {"train", "ema"}},            {"--clip-factor", {"train", "clip_factor"}},
    {"--scale-clamp", {"model", "scale_clamp"}}, {"--net-actnorm", {"model", "net_actnorm"}},
    {"--prior-scale-cap", {"model", "prior_scale_cap"}}, {"--conditional", {"model", "classes"}},
    {"--class-shift", {"model", "class_shift"}}, {"--class-splits", {"model", "class_splits"}},
    {"--dequantization", {"model", "dequantization"}}, {"--dequant-hidden", {"model", "dequant_hidden"}},
    {"--class-weight", {"train", "class_weight"}},
};

std::string state_of(const Generator& g) {
  std::ostringstream os;
  os << g;
  return os.str();
}

void restore_generator(Generator& g, const std::string& state, const std::string& what) {
  std::istringstream is(state);
  Generator r;
  is >> r;
  if (is.fail()) throw std::runtime_error(what + " is not a random generator state");
  g = r;
}

std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string general(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

struct Metric {
  std::int64_t step;
  double epoch, seconds, train_bpd, test_bpd;
  double lr;  // of the last step before the evaluation
  double marginal_bpd = NAN, accuracy = NAN;  // class-conditional models
};

nlohmann::json metric_json(const Metric& m) {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j{{"step", m.step}, {"epoch", std::round(m.epoch * 1000) / 1000}, {"seconds", std::round(m.seconds * 10) / 10},
                   {"train_bpd", num(m.train_bpd)}, {"test_bpd", num(m.test_bpd)}, {"lr", num(m.lr)}};
  if (!std::isnan(m.accuracy)) j["test_marginal_bpd"] = num(m.marginal_bpd), j["test_accuracy"] = num(m.accuracy);
  return j;
}

// The rows of metrics.jsonl up to `max_step` (rows past the checkpoint were written by a
// process that died before its next checkpoint; the resumed run writes them again).
std::vector<Metric> read_metrics(const std::string& path, std::int64_t max_step) {
  std::vector<Metric> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      auto num = [](const nlohmann::json& v) { return v.is_null() ? NAN : v.get<double>(); };
      Metric m{j.at("step").get<std::int64_t>(), num(j.at("epoch")), num(j.at("seconds")), num(j.at("train_bpd")),
               num(j.at("test_bpd")), j.contains("lr") ? num(j.at("lr")) : NAN};
      if (j.contains("test_accuracy")) m.marginal_bpd = num(j.at("test_marginal_bpd")), m.accuracy = num(j.at("test_accuracy"));
      if (m.step <= max_step) out.push_back(m);
    } catch (const std::exception&) {
      // A line cut by a crash: dropped, the run goes on.
    }
  }
  return out;
}

// Everything besides the model, optimizer and average that the next step depends on.
struct LoopState {
  std::size_t epochs_done = 0;     // complete epochs
  std::size_t batch_in_epoch = 0;  // batches of the current epoch already trained on
  std::string shuffle_epoch_start; // the shuffle generator before this epoch's permutation
  double seconds_before = 0;       // wall time of the run before this process
  double bpd_sum = 0;              // train bits/dim summed since the last evaluation
  std::size_t bpd_count = 0;
  std::int64_t last_eval_step = -1;
};

void check_resume_options(const TrainArgs& a, const RunConfig& stored, const std::string& path) {
  const nlohmann::json want = to_json(a.config), have = to_json(stored);
  std::string problems;
  for (auto& [option, where] : kFixedOptions) {
    if (!a.given(option)) continue;
    const auto& w = want.at(where.first).at(where.second);
    const auto& h = have.at(where.first).at(where.second);
    if (w != h)
      problems += (problems.empty() ? "" : "; ") + option + " " + w.dump() + " (the run has " + h.dump() + ")";
  }
  if (!problems.empty())
    throw UsageError(path + " holds a different run: " + describe(stored.model) + " on " + stored.train.dataset +
                     ", but the command line asks for " + problems +
                     ". A resumed run keeps its model and recipe; start a new run with --out to change them");
}

// The sizes a new run gets when the command line leaves them out.
ModelSize model_size(const TrainArgs& a) {
  if (a.size == "large") return ModelSize::Large;
  if (a.size == "small") return ModelSize::Small;
  return size_for_budget(a.config.train.minutes);
}

// The app's defaults besides the sizes, chosen by the measurements in docs/TRAINING.md:
// the learning rate by model, and the model's form (the bench configs keep the reference's).
void apply_app_defaults(RunConfig& c, const TrainArgs& a) {
  ModelConfig& m = c.model;
  if (!a.given("--lr")) c.train.lr = m.name == "glow" ? 4e-3 : m.name == "realnvp" ? 3e-3 : 1e-3;
  if (m.bench) return;
  // Real NVP's choice: a small alpha for the digit and garment sets, whose black
  // backgrounds sit at 0; 0.05 for natural images.
  if (!a.given("--logit-alpha")) m.logit_alpha = c.train.dataset == "cifar10" ? 0.05 : 1e-5;
  if (m.name != "glow") return;
  if (!a.given("--scale-clamp")) m.scale_clamp = 2;
  if (!a.given("--prior-scale-cap")) m.prior_scale_cap = 2;
  if (!a.given("--learn-top")) m.learn_top = true;
}

// Where a run trains and with which configuration: a new run from the command line, or a
// resumed one from its checkpoint (with the limits and evaluation options it may change).
struct RunPlace {
  RunConfig cfg;
  std::string run_dir, ckpt_path;
  nn::Metadata ckpt_meta;
  bool resume = false;
  bool budget_changed = false;  // a resumed run given other limits: its schedule starts a new segment
  std::string size_note;        // a new run: which default sizes it got, and why
};

// A new run may use a directory that does not exist, is empty, or holds only what a run
// stopped before its step-0 checkpoint leaves (config.json, temp files of atomic writes).
void check_new_run_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir, ec)) throw UsageError("--out " + dir + ": exists and is not a directory");
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "config.json" || is_run_temp_file(name)) continue;
    throw UsageError("--out " + dir + ": already holds files (" + name + (name == kCheckpointName ? "" : ", ...") +
                     "); continue that run with --resume " + dir + ", or choose another --out");
  }
}

RunPlace resolve_run(const TrainArgs& a) {
  RunPlace r;
  r.resume = !a.resume.empty();
  std::error_code ec;
  if (r.resume) {
    if (a.given("--out") && fs::weakly_canonical(a.out, ec) != fs::weakly_canonical(a.resume, ec))
      throw UsageError("--out " + a.out + " and --resume " + a.resume +
                       " differ: a resumed run continues in its own directory (drop --out)");
    if (!fs::is_directory(a.resume, ec))
      throw UsageError("--resume " + a.resume + ": not a run directory (expected the --out directory of a train run)");
    r.run_dir = a.resume;
    r.ckpt_path = resolve_checkpoint(r.run_dir);
    r.ckpt_meta = nn::load_safetensors(r.ckpt_path).metadata;
    r.cfg = read_run_config(r.ckpt_meta, r.ckpt_path);
    check_resume_options(a, r.cfg, r.ckpt_path);
    auto& t = r.cfg.train;
    const auto& given = a.config.train;
    if (a.given("--data-dir")) t.data_dir = given.data_dir.empty() ? "" : fs::absolute(given.data_dir).string();
    if (a.given("--epochs") || a.given("--steps") || a.given("--minutes")) {
      r.budget_changed = t.epochs != given.epochs || t.steps != given.steps || t.minutes != given.minutes;
      t.epochs = given.epochs, t.steps = given.steps, t.minutes = given.minutes;
    }
    if (a.given("--eval-every")) t.eval_every = given.eval_every;
    if (a.given("--checkpoint-every")) t.checkpoint_every = given.checkpoint_every;
    return r;
  }
  for (const char* required : {"--model", "--dataset", "--out"})
    if (!a.given(required)) throw UsageError(std::string(required) + " is required for a new run (or --resume RUN_DIR)");
  r.cfg = a.config;
  nominal_image_shape(r.cfg.train.dataset, r.cfg.model.channels, r.cfg.model.height, r.cfg.model.width);
  apply_app_defaults(r.cfg, a);
  fill_model_defaults(r.cfg.model, model_size(a));
  if (!r.cfg.model.bench)
    r.size_note = std::string(size_name(model_size(a))) + " default sizes" +
                  (a.size == "auto" ? (model_size(a) == ModelSize::Large ? " (--minutes >= 30)" : " (a budget under 30 minutes)")
                                    : "");
  validate_model(r.cfg.model);
  if (!r.cfg.train.epochs && !r.cfg.train.steps && r.cfg.train.minutes <= 0) r.cfg.train.epochs = 1;
  if (!r.cfg.train.data_dir.empty()) r.cfg.train.data_dir = fs::absolute(r.cfg.train.data_dir).string();
  r.run_dir = a.out;
  check_new_run_dir(r.run_dir);
  return r;
}

// The training of one run: the model, its optimizer and average, the schedule and the
// loop's state, and the named pieces of the loop (step, evaluate, checkpoint, plan).
class Training {
 public:
  Training(const TrainArgs& args, RunPlace place, const data::ImageDataset& train, const data::ImageDataset& test);
  void run();

 private:
  void restore();
  void print_header() const;
  void show_progress(std::int64_t done);  // on a terminal every step, in a log every 10 s
  void print_summary() const;
  // One optimisation step on the next batch; throws when the loss or gradient is not finite.
  void step();
  // Per example of this rank's rows of the batch (B,): log p(x | y), dequantized with
  // uniform noise or as the variational bound log p(x + u) - log q(u | x) with u ~ q; and,
  // with --class-weight, the generative classifier's -log p(y | x) (undefined otherwise).
  struct Objective {
    Tensor<float> log_likelihood, class_nll;
  };
  Objective objective(const data::Batch& batch, std::int64_t step, const Tensor<float>& context);
  Objective score(const Tensor<float>& x, const Tensor<float>& context);
  void evaluate();
  void checkpoint();
  // A time budget: once the warmup is done and the step time measured, where the learning
  // rate reaches 0 (stored in the checkpoint, so a resumed run keeps it).
  void plan_schedule_end();
  // Every rank takes rank 0's decisions on what depends on its clock and signals.
  void agree(bool& stop, bool& interrupted);
  void initialize_on(const xt::xarray<float>& global_batch);
  double estimate_eval_seconds();  // from one test batch, the sample grids and a checkpoint
  std::string write_sample_grids();  // returns what went wrong, for the log line
  bool limits_reached() const;
  double process_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  double seconds() const { return st_.seconds_before + process_seconds(); }  // of the whole run
  std::runtime_error diverged(std::int64_t step, const std::string& what);
  std::string limits_text() const;

  const TrainArgs& args_;
  nn::Communicator& group_ = process_group();
  const bool root_ = group_.is_root();  // writes the run directory
  RunPlace place_;
  const RunConfig& cfg_ = place_.cfg;
  const TrainConfig& t_ = place_.cfg.train;
  const data::ImageDataset& train_;
  const data::ImageDataset& test_;
  std::shared_ptr<flows::FlowModel<float>> model_;
  nn::Named<float> params_;
  std::unique_ptr<nn::Optimizer<float>> opt_;
  std::unique_ptr<nn::ExponentialMovingAverage<float>> ema_;  // null without --ema
  nn::SpikeClipper spikes_;
  nn::LearningRateSchedule schedule_;
  Generator shuffle_rng_, noise_rng_;
  LoopState st_;
  std::vector<Metric> metrics_;
  std::string metrics_path_, ckpt_file_;
  std::unique_ptr<data::Batcher> batcher_;  // of global batches, the same on every rank
  data::Shard shard_;                       // this rank's rows of each
  std::size_t per_epoch_ = 0, total_steps_ = 0;
  std::int64_t first_step_ = 0, last_checkpoint_step_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::unique_ptr<Progress> progress_;
  std::chrono::steady_clock::time_point last_progress_;  // of the last line shown
  double last_test_bpd_ = NAN, last_bpd_ = NAN;
  // Step time in this process, after its first few steps (allocation, caches).
  double timed_seconds_ = 0, train_seconds_ = 0;
  std::size_t timed_steps_ = 0, images_done_ = 0;
  // The plan's earliest step and time in this process, and where its step timing starts.
  std::int64_t plan_at_ = 0, time_from_ = 0;
  double plan_after_seconds_ = 0;
};

Training::Training(const TrainArgs& args, RunPlace place, const data::ImageDataset& train,
                   const data::ImageDataset& test)
    : args_(args), place_(std::move(place)), train_(train), test_(test),
      spikes_{place_.cfg.train.clip_factor},
      schedule_{place_.cfg.train.lr, place_.cfg.train.warmup},
      shuffle_rng_(place_.cfg.train.seed ^ 0x53485546464c45ULL),
      noise_rng_(place_.cfg.train.seed ^ 0x4e4f495345ULL) {
  manual_seed(t_.seed);
  model_ = build_model(cfg_.model);
  nn::broadcast_state(*model_, group_);
  shard_ = data::shard_of(t_.batch, std::size_t(group_.rank()), std::size_t(group_.size()));
  params_ = model_->named_parameters();
  opt_ = nn::make_optimizer(t_.optimizer, params_, t_.lr, t_.weight_decay);
  if (t_.ema > 0) ema_ = std::make_unique<nn::ExponentialMovingAverage<float>>(params_, t_.ema);
  metrics_path_ = (fs::path(place_.run_dir) / "metrics.jsonl").string();
  ckpt_file_ = (fs::path(place_.run_dir) / kCheckpointName).string();
  if (place_.resume)
    restore();
  else
    st_.shuffle_epoch_start = state_of(shuffle_rng_);

  batcher_ = std::make_unique<data::Batcher>(train_, data::BatchOptions{t_.batch, true, t_.flip}, shuffle_rng_);
  per_epoch_ = batcher_->batches_per_epoch();
  if (place_.resume) {
    const auto& path = place_.ckpt_path;
    const auto images = meta_number<std::size_t>(place_.ckpt_meta, "train_images", path);
    if (images != train_.size())
      throw UsageError(train_.source + " has " + std::to_string(train_.size()) + " images, but the run in " +
                       place_.run_dir + " was trained on " + std::to_string(images) + ": it can only resume on the same data");
    if (st_.batch_in_epoch >= per_epoch_)
      throw std::runtime_error(path + ": metadata 'batch_in_epoch' " + std::to_string(st_.batch_in_epoch) +
                               " is past the end of an epoch of " + std::to_string(per_epoch_) + " batches");
  }
  data::Batch skipped;
  for (std::size_t i = 0; i < st_.batch_in_epoch; ++i) batcher_->next(skipped);  // replay the epoch's draws

  total_steps_ = t_.steps;
  if (t_.epochs && (!total_steps_ || t_.epochs * per_epoch_ < total_steps_)) total_steps_ = t_.epochs * per_epoch_;
  first_step_ = last_checkpoint_step_ = opt_->step_count();
  if (t_.lr_decay == "cosine" && (place_.budget_changed || !place_.resume)) {
    // A new segment of the schedule: warm up from here and decay to the end of the budget
    // (planned after the warmup when the budget is a time).
    schedule_.start = first_step_;
    schedule_.end = t_.minutes > 0 ? 0 : std::int64_t(total_steps_);
  }
  // The plan comes after the warmup and 15% of the budget; its step time is measured from
  // half-way there on (the first steps are slower: memory, caches).
  plan_at_ = std::max(schedule_.start + std::max<std::int64_t>(t_.warmup, 20), first_step_ + 20);
  time_from_ = first_step_ + std::max<std::int64_t>(10, (plan_at_ - first_step_) / 2);
  plan_after_seconds_ = 0.15 * std::max(0.0, t_.minutes * 60 - st_.seconds_before);
  start_ = std::chrono::steady_clock::now();
  if (!place_.resume) checkpoint();  // step 0, before any other file: a run directory holds a checkpoint
  if (root_) write_atomically((fs::path(place_.run_dir) / "config.json").string(), to_json(cfg_).dump(2) + "\n");
}

void Training::restore() {
  const auto& path = place_.ckpt_path;
  const auto& m = place_.ckpt_meta;
  try {
    place_.ckpt_meta = nn::load_checkpoint(path, *model_, *opt_, true, ema_.get());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(e.what()) + " (the checkpoint does not fit the " + describe(cfg_.model) +
                             " its own metadata describes)");
  }
  st_.epochs_done = meta_number<std::size_t>(m, "epoch", path);
  st_.batch_in_epoch = meta_number<std::size_t>(m, "batch_in_epoch", path);
  st_.shuffle_epoch_start = meta_text(m, "shuffle_rng", path);
  restore_generator(shuffle_rng_, st_.shuffle_epoch_start, path + ": metadata 'shuffle_rng'");
  restore_generator(noise_rng_, meta_text(m, "noise_rng", path), path + ": metadata 'noise_rng'");
  st_.seconds_before = meta_number<double>(m, "seconds", path);
  st_.bpd_sum = meta_number<double>(m, "bpd_sum", path);
  st_.bpd_count = meta_number<std::size_t>(m, "bpd_count", path);
  st_.last_eval_step = meta_number<std::int64_t>(m, "last_eval_step", path);
  schedule_.start = meta_number_or<std::int64_t>(m, "schedule_start", path, 0);
  schedule_.end = meta_number_or<std::int64_t>(m, "schedule_end", path, 0);
  spikes_.average = meta_number_or<double>(m, "grad_norm_average", path, 0.0);
  spikes_.clipped = meta_number_or<std::int64_t>(m, "clipped_steps", path, 0);
  const std::int64_t step = opt_->step_count();
  auto bad = [&](const char* key, const std::string& why) { return metadata_error(path, key, why); };
  if (schedule_.start < 0 || schedule_.start > step) throw bad("schedule_start", "is outside 0..step " + std::to_string(step));
  if (schedule_.end < 0 || (schedule_.end > 0 && schedule_.end <= schedule_.start))
    throw bad("schedule_end", "is negative or not after schedule_start");
  if (!(std::isfinite(spikes_.average) && spikes_.average >= 0)) throw bad("grad_norm_average", "is not a finite norm");
  if (st_.seconds_before < 0) throw bad("seconds", "is negative");
  if (meta_number_or<std::int64_t>(m, "step", path, step) != step)
    throw bad("step", "is " + meta_text(m, "step", path) + ", but the optimizer's state is at step " + std::to_string(step));
  if (spikes_.clipped < 0 || spikes_.clipped > step) throw bad("clipped_steps", "is outside 0..step " + std::to_string(step));
  metrics_ = read_metrics(metrics_path_, opt_->step_count());
}

void Training::checkpoint() {
  if (!root_) {  // holds the same state as rank 0, which writes it
    last_checkpoint_step_ = opt_->step_count();
    return;
  }
  nn::Metadata m{{"format", kCheckpointFormat},
                 {"config", to_json(cfg_).dump()},
                 {"epoch", std::to_string(st_.epochs_done)},
                 {"batch_in_epoch", std::to_string(st_.batch_in_epoch)},
                 {"shuffle_rng", st_.batch_in_epoch ? st_.shuffle_epoch_start : state_of(shuffle_rng_)},
                 {"noise_rng", state_of(noise_rng_)},
                 {"seconds", exact(seconds())},
                 {"bpd_sum", exact(st_.bpd_sum)},
                 {"bpd_count", std::to_string(st_.bpd_count)},
                 {"last_eval_step", std::to_string(st_.last_eval_step)},
                 {"schedule_start", std::to_string(schedule_.start)},
                 {"schedule_end", std::to_string(schedule_.end)},
                 {"grad_norm_average", exact(spikes_.average)},
                 {"clipped_steps", std::to_string(spikes_.clipped)},
                 {"train_images", std::to_string(train_.size())},
                 {"producer", std::string("flowgrad ") + FLOWGRAD_VERSION}};
  try {
    nn::save_checkpoint(ckpt_file_, *model_, *opt_, m, ema_.get());
  } catch (const nn::NonFiniteState& e) {
    throw diverged(opt_->step_count() - 1, "after its update '" + e.tensor + "' is not finite");
  }
  last_checkpoint_step_ = opt_->step_count();
}

void Training::evaluate() {
  const auto t0 = std::chrono::steady_clock::now();
  const double step_seconds = seconds();
  nn::AveragedWeights<float> averaged(ema_.get());  // evaluation and samples use the average
  const TestScores scores = test_scores(*model_, test_, 500, SIZE_MAX, group_);
  const double test_bpd = scores.bpd;
  const double train_bpd = st_.bpd_count ? st_.bpd_sum / double(st_.bpd_count) : NAN;
  const std::int64_t step = opt_->step_count();
  metrics_.push_back({step, double(st_.epochs_done) + double(st_.batch_in_epoch) / double(per_epoch_), step_seconds,
                      train_bpd, test_bpd, opt_->lr(), scores.marginal_bpd, scores.accuracy});
  st_.bpd_sum = 0, st_.bpd_count = 0, st_.last_eval_step = step;
  last_test_bpd_ = test_bpd;
  if (!root_) return;
  std::string lines;
  std::vector<std::pair<double, double>> train_points, test_points;
  for (auto& m : metrics_) {
    lines += metric_json(m).dump() + "\n";
    train_points.emplace_back(double(m.step), m.train_bpd);
    test_points.emplace_back(double(m.step), m.test_bpd);
  }
  write_atomically(metrics_path_, lines);
  write_curve_svg((fs::path(place_.run_dir) / "curve.svg").string(),
                  {{"train", "#1f77b4", train_points}, {"test", "#d62728", test_points}},
                  cfg_.model.name + " on " + t_.dataset + ": bits/dim");
  const std::string bad = write_sample_grids();
  const double eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress_->print_line("step " + std::to_string(step) + " (" + fixed(metrics_.back().epoch, 2) + " epochs)  train " +
                        fixed(train_bpd, 4) + "  test " + fixed(test_bpd, 4) + " bits/dim" +
                        (cfg_.model.classes ? " (marginal " + fixed(scores.marginal_bpd, 4) + ", classifier accuracy " +
                                                  fixed(100 * scores.accuracy, 2) + "%)"
                                            : "") +
                        (ema_ ? " (averaged weights)" : "") + "  (" + format_duration(step_seconds) + ", eval " +
                        fixed(eval_s, 1) + " s)" + bad);
}

std::string Training::write_sample_grids() {
  std::string bad;
  for (double temperature : {0.7, 1.0}) {
    const std::string name = "samples_T" + fixed(temperature, 1) + ".png";
    // A class-conditional model: a row of 8 for each class.
    const auto classes = rows_of_classes(cfg_.model.classes, 8);
    const std::size_t count = classes.empty() ? 64 : classes.size();
    const std::size_t n = write_samples(*model_, cfg_.model, (fs::path(place_.run_dir) / name).string(), count,
                                        temperature, t_.seed + 1, classes, classes.empty() ? 0 : 8);
    if (n) bad += "; " + name + ": " + std::to_string(n) + " of " + std::to_string(count) +
                  " samples not finite (drawn as grey tiles)";
  }
  return bad;
}

double Training::estimate_eval_seconds() {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const std::size_t batch = 500, ranks = std::size_t(group_.size());
  const std::size_t batches = ((test_.size() + batch - 1) / batch + ranks - 1) / ranks;  // this rank's share
  double seconds = 0;
  {
    nn::AveragedWeights<float> averaged(ema_.get());
    auto t = Clock::now();
    test_bits_per_dim(*model_, test_, batch, 1);
    seconds += since(t) * double(batches);
    t = Clock::now();
    write_sample_grids();
    seconds += since(t);
  }
  const auto t = Clock::now();
  checkpoint();  // with the trained weights, outside the average's scope
  return seconds + since(t);
}

void Training::plan_schedule_end() {
  const double eval_seconds = estimate_eval_seconds();
  const double step_seconds = args_.debug_step_seconds > 0 ? args_.debug_step_seconds
                                                           : timed_seconds_ / double(timed_steps_);
  const double spent = seconds();
  const double evals_per_step = 1.0 / double(per_epoch_) + (t_.eval_every ? 1.0 / double(t_.eval_every) : 0.0);
  const std::int64_t done = opt_->step_count();
  std::int64_t end = done + nn::steps_that_fit(t_.minutes * 60 - spent, step_seconds, eval_seconds, evals_per_step);
  if (total_steps_) end = std::min(end, std::int64_t(total_steps_));
  schedule_.end = std::max(end, done + 1);
  progress_->set_total_steps(std::size_t(schedule_.end));
  checkpoint();
  progress_->print_line("step " + std::to_string(done) + ": planned " + with_commas(std::size_t(schedule_.end)) + " steps for the " +
                        fixed(t_.minutes, 1) + "-minute budget (" + fixed(step_seconds * 1000, 1) + " ms a step, " +
                        fixed(eval_seconds, 1) + " s an evaluation): the learning rate reaches 0 there");
}

bool Training::limits_reached() const {
  const auto done = opt_->step_count();
  return (t_.steps && std::size_t(done) >= t_.steps) || (t_.epochs && st_.epochs_done >= t_.epochs) ||
         (t_.minutes > 0 && seconds() >= t_.minutes * 60) || (schedule_.end > 0 && done >= schedule_.end);
}

std::runtime_error Training::diverged(std::int64_t step, const std::string& what) {
  if (progress_) progress_->finish();
  return std::runtime_error("step " + std::to_string(step + 1) + ": " + what +
                            ": training diverged and stops here. Try a lower --lr (now " + general(t_.lr) +
                            ") or a longer --warmup (now " + std::to_string(t_.warmup) +
                            " steps). The last good checkpoint, " + ckpt_file_ + " (step " +
                            std::to_string(last_checkpoint_step_) + "), is kept");
}

void Training::step() {
  if (st_.batch_in_epoch == 0) st_.shuffle_epoch_start = state_of(shuffle_rng_);
  data::Batch batch;
  if (!batcher_->next(batch)) throw std::logic_error("train: the batcher ended an epoch early");
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t step = opt_->step_count();  // this step's index, from 0
  const auto first_label = batch.labels.begin() + std::ptrdiff_t(shard_.first);
  const Tensor<float> context = cfg_.model.classes ? flows::one_hot<float>({first_label, first_label + std::ptrdiff_t(shard_.count)},
                                                                           cfg_.model.classes)
                                                   : Tensor<float>();
  opt_->set_lr(schedule_.lr(step));
  opt_->zero_grad();
  // Nats per image of the global batch: this rank's sum over the batch size, summed over the
  // ranks below (in one process, what mean() computes).
  const Objective o = objective(batch, step, context);
  const float per_image = 1.0f / float(t_.batch);
  const Tensor<float> nll = mul(sum(-o.log_likelihood), per_image);
  const Tensor<float> loss = o.class_nll.defined() ? nll + mul(sum(o.class_nll), float(t_.class_weight) * per_image) : nll;
  double nats[2] = {nll.item(), loss.item()};  // the likelihood's part (reported), and the loss
  if (args_.hook(args_.debug_nan_at_step, step)) nats[1] = NAN;
  if (args_.hook(args_.debug_fail_at_step, step)) throw std::runtime_error("step " + std::to_string(step + 1) + ": --debug-fail-at-step");
  if (args_.hook(args_.debug_exit_at_step, step)) std::_Exit(3);
  group_.allreduce_sum(nats, 2);  // a NaN on one rank is a NaN on all: they stop together
  if (!std::isfinite(nats[1]))
    throw diverged(step, "the loss is " + std::string(std::isnan(nats[1]) ? "NaN" : "infinite"));
  loss.backward();
  nn::allreduce_gradients(params_, group_);
  const double norm = t_.clip_factor > 0 ? spikes_.clip(params_) : t_.clip > 0 ? nn::clip_grad_norm(params_, t_.clip) : 0.0;
  if (!std::isfinite(norm)) throw diverged(step, "the gradient norm is not finite");
  opt_->step();
  if (args_.hook(args_.debug_nan_weights_at_step, step))
    params_.front().second.value().data()[0] = NAN;
  if (ema_) ema_->update();
  last_bpd_ = flows::bits_per_dim(-nats[0], model_->dims());
  st_.bpd_sum += last_bpd_, ++st_.bpd_count, ++st_.batch_in_epoch;
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  train_seconds_ += took, images_done_ += batch.labels.size();  // over all ranks
  if (step >= time_from_ && process_seconds() >= plan_after_seconds_ / 2) timed_seconds_ += took, ++timed_steps_;
  if (st_.batch_in_epoch == per_epoch_) {
    data::Batch none;
    batcher_->next(none);  // false: closes the epoch without drawing
    ++st_.epochs_done, st_.batch_in_epoch = 0;
  }
}

Training::Objective Training::score(const Tensor<float>& x, const Tensor<float>& context) {
  if (!(t_.class_weight > 0)) return {model_->log_prob(x, context), {}};
  const Tensor<float> each = model_->log_prob_each_class(x);  // the flow once, the priors per class
  return {sum(each * context, {1}), flows::class_nll(each, context)};
}

Training::Objective Training::objective(const data::Batch& batch, std::int64_t step, const Tensor<float>& context) {
  auto* dequantizer = model_->dequantizer();
  Shape model_shape{shard_.count};
  for (auto s : model_->input_shape()) model_shape.push_back(s);
  if (!dequantizer) {
    xt::xarray<float> x = data::dequantize<float>(batch.images, noise_rng_);  // the whole batch on every rank
    if (group_.size() > 1) {
      if (step == 0) initialize_on(x);
      x = data::take_rows(x, shard_);
    }
    to_model_shape(x, *model_);
    return score(Tensor<float>(std::move(x)), context);
  }
  xt::xarray<float> pixels = xt::cast<float>(batch.images);
  xt::xarray<float> noise = normal<float>(to_shape(pixels.shape()), 0.f, 1.f, noise_rng_);  // the whole batch
  if (group_.size() > 1) {
    if (step == 0) {
      NoGrad no_grad;
      initialize_on(dequantizer->forward(pixels, noise).x.value());
    }
    pixels = data::take_rows(pixels, shard_), noise = data::take_rows(noise, shard_);
  }
  const flows::Dequantized<float> d = dequantizer->forward(pixels, noise);
  Objective o = score(reshape(d.x, model_shape), context);
  o.log_likelihood = o.log_likelihood - d.log_q;  // the bound's log p - log q; p(y | x) does not see q
  return o;
}

void Training::agree(bool& stop, bool& interrupted) {
  if (group_.size() == 1) return;
  std::int64_t decided[3] = {stop, interrupted, schedule_.end};
  group_.broadcast(decided, sizeof decided);
  stop = decided[0] != 0, interrupted = decided[1] != 0;
  if (schedule_.end != decided[2]) schedule_.end = decided[2], progress_->set_total_steps(std::size_t(decided[2]));
}

// ActNorm's data-dependent init, from the whole global batch (as one process would do it in
// its first step), then rank 0's result on every rank.
void Training::initialize_on(const xt::xarray<float>& global_batch) {
  xt::xarray<float> x = global_batch;
  to_model_shape(x, *model_);
  model_->initialize_from_data(Tensor<float>(std::move(x)));
  nn::broadcast_state(*model_, group_);
}

std::string Training::limits_text() const {
  std::string limits;
  if (t_.epochs) limits += std::to_string(t_.epochs) + (t_.epochs == 1 ? " epoch" : " epochs");
  if (t_.steps) limits += (limits.empty() ? "" : " or ") + std::to_string(t_.steps) + " steps";
  if (t_.minutes > 0) limits += (limits.empty() ? "" : " or ") + fixed(t_.minutes, 1) + " minutes";
  return limits;
}

void Training::print_header() const {
  std::printf("model: %s, %s parameters%s\n", describe(cfg_.model).c_str(), with_commas(model_->parameter_count()).c_str(),
              place_.size_note.empty() ? "" : ("; " + place_.size_note).c_str());
  std::printf("data: %s (%s images), test %s images\n", train_.source.c_str(), with_commas(train_.size()).c_str(),
              with_commas(test_.size()).c_str());
  std::string clip = t_.clip_factor > 0 ? "clip at " + general(t_.clip_factor) + "x the running gradient norm"
                     : t_.clip > 0      ? "clip " + general(t_.clip)
                                        : "no clipping";
  const std::string workers = group_.size() == 1 ? std::to_string(num_threads()) + (num_threads() == 1 ? " thread" : " threads")
                              : std::to_string(group_.size()) + " ranks x " + std::to_string(num_threads()) +
                                    (num_threads() == 1 ? " thread (" : " threads (") + std::to_string(shard_.count) +
                                    " images a rank)";
  std::printf("recipe: %s lr %g%s, warmup %lld steps%s, %s%s%s, batch %zu (%zu steps per epoch), %s, seed %llu\n",
              t_.optimizer.c_str(), t_.lr, t_.weight_decay > 0 ? (", weight decay " + general(t_.weight_decay)).c_str() : "",
              (long long)t_.warmup, t_.lr_decay == "cosine" ? " then cosine decay to 0" : "", clip.c_str(),
              ema_ ? (", weights averaged (decay " + general(t_.ema) + ")").c_str() : "",
              t_.class_weight > 0 ? (", loss -log p(x | y) + " + general(t_.class_weight) + " x -log p(y | x)").c_str() : "",
              t_.batch, per_epoch_,
              workers.c_str(), (unsigned long long)t_.seed);
  const bool several = (t_.epochs ? 1 : 0) + (t_.steps ? 1 : 0) + (t_.minutes > 0 ? 1 : 0) > 1;
  std::printf("%s %s: until %s%s\n", place_.resume ? "resuming" : "writing", place_.run_dir.c_str(),
              limits_text().c_str(), several ? ", whichever comes first" : "");
  if (place_.resume)
    std::printf("resumed at step %lld (epoch %zu, batch %zu of %zu)%s\n", (long long)first_step_, st_.epochs_done + 1,
                st_.batch_in_epoch, per_epoch_,
                place_.budget_changed && t_.lr_decay == "cosine"
                    ? "; a new budget: the learning rate warms up again and decays to its end"
                    : "");
  std::fflush(stdout);
}

void Training::run() {
  const double time_limit = t_.minutes > 0 ? std::max(0.0, t_.minutes * 60 - st_.seconds_before) : 0;
  print_header();
  progress_ = std::make_unique<Progress>(schedule_.end > 0 ? std::size_t(schedule_.end) : total_steps_, time_limit, 1,
                                         std::size_t(first_step_));
  bool complete = limits_reached(), interrupted_before = false;
  agree(complete, interrupted_before);
  if (complete) {
    if (st_.last_eval_step != opt_->step_count()) {
      evaluate();
      checkpoint();
    }
    std::printf("the run is already complete at step %lld (%s); give a larger --epochs, --steps or --minutes "
                "to train further\n",
                (long long)opt_->step_count(), limits_text().c_str());
    return;
  }
  for (;;) {
    const bool epoch_end = st_.batch_in_epoch + 1 == per_epoch_;
    step();
    const std::int64_t done = opt_->step_count();
    show_progress(done);
    if (args_.debug_interrupt_at_step && std::size_t(done) == args_.debug_interrupt_at_step) g_interrupted = 1;
    bool interrupted = g_interrupted != 0;
    if (root_ && schedule_.end == 0 && t_.lr_decay == "cosine" && t_.minutes > 0 && done >= plan_at_ &&
        timed_steps_ >= 10 && process_seconds() >= plan_after_seconds_ && !interrupted && !limits_reached())
      plan_schedule_end();
    bool stop = limits_reached();
    agree(stop, interrupted);
    const bool eval_now = epoch_end || (t_.eval_every && done % std::int64_t(t_.eval_every) == 0) || (stop && !interrupted);
    if (eval_now && st_.last_eval_step != done) evaluate();
    if (interrupted) {
      checkpoint();
      progress_->print_line("interrupted at step " + std::to_string(done) + ": " + ckpt_file_ +
                            " saved; continue with: flowgrad train --resume " + place_.run_dir);
      progress_->finish();
      throw CommandExit{130};
    }
    if (eval_now || (t_.checkpoint_every && done % std::int64_t(t_.checkpoint_every) == 0)) checkpoint();
    if (stop) break;
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  progress_->finish();
  print_summary();
}

void Training::show_progress(std::int64_t done) {
  const auto now = std::chrono::steady_clock::now();
  if (!progress_->tty() && now - last_progress_ < std::chrono::seconds(10) && done != first_step_ + 1) return;
  last_progress_ = now;
  progress_->update(std::size_t(done), st_.epochs_done + (st_.batch_in_epoch ? 1 : 0), last_bpd_,
                    double(images_done_) / std::max(train_seconds_, 1e-9));
}

void Training::print_summary() const {
  const std::string& run_dir = place_.run_dir;
  const std::string dir = run_dir + (run_dir.empty() || run_dir.back() == '/' ? "" : "/");
  std::printf("done: step %lld (%s epochs), %s; %s images/s in training steps\n", (long long)opt_->step_count(),
              fixed(metrics_.back().epoch, 2).c_str(), format_duration(seconds()).c_str(),
              fixed(double(images_done_) / std::max(train_seconds_, 1e-9), 1).c_str());
  if (t_.clip_factor > 0)
    std::printf("clipped %lld of %lld steps (gradient norm above %gx its running average)\n", (long long)spikes_.clipped,
                (long long)opt_->step_count(), t_.clip_factor);
  std::printf("test bits/dim: %s (%s test images%s)\n", fixed(last_test_bpd_, 4).c_str(),
              with_commas(test_.size()).c_str(), ema_ ? ", averaged weights" : "");
  if (cfg_.model.classes)
    std::printf("class-conditional: marginal test bits/dim %s, generative classifier accuracy %s%%\n",
                fixed(metrics_.back().marginal_bpd, 4).c_str(), fixed(100 * metrics_.back().accuracy, 2).c_str());
  std::printf("samples: %ssamples_T0.7.png %ssamples_T1.0.png\n", dir.c_str(), dir.c_str());
  std::printf("curve: %scurve.svg  metrics: %smetrics.jsonl  checkpoint: %s%s\n", dir.c_str(), dir.c_str(),
              dir.c_str(), kCheckpointName);
  std::fflush(stdout);
}

void run_train(TrainArgs& a) {
  RunPlace place = resolve_run(a);
  RunConfig& cfg = place.cfg;
  validate_train(cfg.train);
  if (cfg.train.class_weight > 0 && !cfg.model.classes)
    throw UsageError("--class-weight applies to a class-conditional model: add --conditional");
  nn::Communicator& group = process_group();
  set_num_threads(threads_per_rank(a.threads));
  retain_freed_memory();  // each step re-uses the last step's memory instead of faulting it in again

  // The data, before anything is written.
  const data::ImageDataset train = data::load_dataset(cfg.train.dataset, cfg.train.data_dir, "train");
  const data::ImageDataset test = data::load_dataset(cfg.train.dataset, cfg.train.data_dir, "test");
  if (test.channels() != train.channels() || test.height() != train.height() || test.width() != train.width())
    throw data::DataError(test.source + ": " + std::to_string(test.height()) + "x" + std::to_string(test.width()) +
                          " images, expected the training set's " + std::to_string(train.height()) + "x" +
                          std::to_string(train.width()));
  if (!place.resume && (train.channels() != cfg.model.channels || train.height() != cfg.model.height ||
                        train.width() != cfg.model.width)) {
    // Files of another image size than the dataset usually has: size the model to them.
    cfg.model = a.config.model;
    cfg.model.channels = train.channels(), cfg.model.height = train.height(), cfg.model.width = train.width();
    apply_app_defaults(cfg, a);
    fill_model_defaults(cfg.model, model_size(a));
    validate_model(cfg.model);
  }
  check_image_shape(cfg.model, train);
  if (cfg.train.batch > train.size())
    throw UsageError("--batch " + std::to_string(cfg.train.batch) + " is larger than the " +
                     std::to_string(train.size()) + " images of " + train.source);

  if (group.size() > 1) {
    try {
      data::shard_of(cfg.train.batch, 0, std::size_t(group.size()));
    } catch (const std::invalid_argument& e) {
      throw UsageError("--batch " + std::to_string(cfg.train.batch) + ": " + e.what());
    }
  }

  // Everything checked: from here on the directory is written, by this process alone (rank
  // 0), and a signal only asks for a checkpoint and a clean stop.
  g_interrupted = 0;
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  group.barrier();  // every rank has checked the directory before rank 0 writes in it
  std::unique_ptr<RunLock> lock;
  if (group.is_root()) {
    fs::create_directories(place.run_dir);
    lock = std::make_unique<RunLock>(place.run_dir);
    if (!place.resume) check_new_run_dir(place.run_dir);  // again, under the lock
    remove_temp_files(place.run_dir);
  }
  Training(a, std::move(place), train, test).run();
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a flow on an image dataset, writing a run directory");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a later value wins
  cmd->footer(
      "Writes RUN_DIR/{config.json, metrics.jsonl, curve.svg, samples_T0.7.png, samples_T1.0.png,\n"
      "checkpoint.safetensors}. Evaluates test bits/dim on the whole test set at each epoch's end, every\n"
      "--eval-every steps and at the end. Ctrl-C saves a checkpoint; --resume RUN_DIR continues exactly.\n"
      "Limits count over the whole run; with none given, one epoch.\n"
      "Example: flowgrad train --model glow --dataset fashion-mnist --minutes 4 --threads 2 --out runs/glow");
  auto& m = a->config.model;
  auto& t = a->config.train;
  auto add = [&](CLI::Option* o) { a->options[o->get_name()] = o; return o; };
  // CLI11 reads "-1" into an unsigned option as 2^64 - 1: those options refuse negatives first.
  auto count = [&](CLI::Option* o) { return add(o->check(non_negative())); };
  add(cmd->add_option("--model", m.name, "nice, realnvp or glow"))
      ->check(CLI::IsMember({"nice", "realnvp", "glow"}))->group("Run");
  add(cmd->add_option("--dataset", t.dataset, "fashion-mnist, mnist or cifar10"))
      ->check(CLI::IsMember({"fashion-mnist", "mnist", "cifar10"}))->group("Run");
  add(cmd->add_option("--data-dir", t.data_dir,
                      "Folder of the dataset's files (fashion-mnist default: /usr/share/datasets/fashion-mnist)"))
      ->group("Run");
  add(cmd->add_option("--out", a->out, "Run directory to create (must not exist or be empty)"))->group("Run");
  add(cmd->add_option("--resume", a->resume, "Continue the run in RUN_DIR where its checkpoint stopped"))
      ->group("Run");
  const char* size = "Model (defaults: sized for the budget, see --size)";
  add(cmd->add_option("--size", a->size,
                      "Default sizes: small (best for a few minutes), large (for an hour), or auto: large when "
                      "--minutes is 30 or more")
          ->check(CLI::IsMember({"auto", "small", "large"}))->capture_default_str())->group(size);
  add(cmd->add_flag("--bench-config", m.bench, "The reference's architecture (torch_flows.py) instead of the defaults"))
      ->group(size);
  count(cmd->add_option("--levels", m.levels, "glow: levels L (default 2; 3 on 32x32); realnvp: scales (default 2)"))->group(size);
  count(cmd->add_option("--flow-steps", m.flow_steps, "glow: steps K per level (small 4, large 8)"))->group(size);
  count(cmd->add_option("--hidden", m.hidden, "Width of the inner nets (glow 64/96, realnvp 32/64, nice 500/1000: small/large)"))->group(size);
  count(cmd->add_option("--couplings", m.couplings, "nice: couplings (4); realnvp: couplings per stage (2)"))->group(size);
  count(cmd->add_option("--blocks", m.blocks, "realnvp: residual blocks per s/t net (1)"))->group(size);
  count(cmd->add_option("--layers", m.layers, "nice: hidden layers per coupling MLP (4)"))->group(size);
  add(cmd->add_flag("--additive", m.additive, "glow: additive instead of affine coupling"))->group(size);
  add(cmd->add_flag("--learn-top,!--no-learn-top", m.learn_top, "glow: learned top prior (default on)"))->group(size);
  add(cmd->add_option("--prior", m.prior, "nice: logistic (default) or gaussian"))->group(size);
  add(cmd->add_option("--logit-alpha", m.logit_alpha,
                      "A logit layer first, with this alpha (default 1e-5; cifar10 0.05; 0: none)"))->group(size);
  add(cmd->add_option("--scale-clamp", m.scale_clamp,
                      "glow: affine scale exp(C tanh(h / C)), bounded both ways (default 2); 0: sigmoid(h + 2) as openai/glow"))->group(size);
  add(cmd->add_flag("--net-actnorm", m.net_actnorm, "glow: ActNorm after the hidden convs of the coupling nets"))->group(size);
  // The readers refuse a label outside the datasets' 10 classes, so a class fits the model.
  add(cmd->add_flag_function("--conditional", [&m](std::int64_t) { m.classes = data::kNumClasses; },
                             "glow: condition the top prior on the class (10 classes; openai/glow's ycond)"))->group(size);
  add(cmd->add_option("--class-shift", m.class_shift,
                      "conditional: the class shifts the prior's mean and log-scale per channel (ycond) or per position")
          ->check(CLI::IsMember({"channel", "position"}))->capture_default_str())->group(size);
  add(cmd->add_flag("--class-splits", m.class_splits, "conditional: condition the split priors on the class too"))->group(size);
  add(cmd->add_option("--dequantization", m.dequantization,
                      "uniform noise, or variational: noise learned by a small conditional flow q(u | x) (Flow++)")
          ->check(CLI::IsMember({"uniform", "variational"}))->capture_default_str())->group(size);
  count(cmd->add_option("--dequant-hidden", m.dequant_hidden, "variational: width of q's nets")->capture_default_str())->group(size);
  add(cmd->add_option("--prior-scale-cap", m.prior_scale_cap,
                      "glow: split priors' sigma below e^C, log sigma > 0 as C tanh(. / C) (default 2); 0: unbounded as openai/glow"))->group(size);
  const char* recipe = "Recipe";
  count(cmd->add_option("--batch", t.batch, "Batch size")->capture_default_str())->group(recipe);
  add(cmd->add_option("--optimizer", t.optimizer, "adam, adamw or adamax")
          ->check(CLI::IsMember({"adam", "adamw", "adamax"}))->capture_default_str())->group(recipe);
  add(cmd->add_option("--lr", t.lr, "Peak learning rate, after the warmup (default: glow 4e-3, realnvp 3e-3, nice 1e-3)"))
      ->group(recipe);
  add(cmd->add_option("--weight-decay", t.weight_decay, "Weight decay (L2 for adam and adamax, decoupled for adamw)")
          ->capture_default_str())->group(recipe);
  add(cmd->add_option("--warmup", t.warmup, "Steps of linear learning-rate warmup")->capture_default_str())->group(recipe);
  add(cmd->add_option("--lr-decay", t.lr_decay, "After the warmup: none, or cosine to 0 at the end of the budget")
          ->check(CLI::IsMember({"none", "cosine"}))->capture_default_str())->group(recipe);
  add(cmd->add_option("--ema", t.ema, "Evaluate and sample with a moving average of the weights of this decay (0: off)")
          ->capture_default_str())->group(recipe);
  add(cmd->add_option("--clip", t.clip, "Clip the gradient norm at this value (0: off)")->capture_default_str())->group(recipe);
  add(cmd->add_option("--clip-factor", t.clip_factor,
                      "Clip gradient norms above this factor x their running average (0: off; replaces --clip)")
          ->capture_default_str())->group(recipe);
  add(cmd->add_option("--class-weight", t.class_weight,
                      "conditional: add this weight x the generative classifier's -log p(y | x) to the loss (0: off)")
          ->capture_default_str())->group(recipe);
  count(cmd->add_option("--seed", t.seed, "Random seed (initialisation, shuffling, noise)")->capture_default_str())->group(recipe);
  add(cmd->add_flag("--flip", t.flip, "Random left-right flips of training images"))->group(recipe);
  const char* limits = "Length and schedule";
  count(cmd->add_option("--epochs", t.epochs, "Stop after this many epochs in all"))->group(limits);
  count(cmd->add_option("--steps", t.steps, "Stop after this many steps in all"))->group(limits);
  add(cmd->add_option("--minutes", t.minutes, "Stop after this many minutes of wall time in all"))->group(limits);
  count(cmd->add_option("--eval-every", t.eval_every, "Also evaluate every N steps (0: at epoch ends only)"))->group(limits);
  count(cmd->add_option("--checkpoint-every", t.checkpoint_every, "Also checkpoint every N steps (0: at evaluations)"))->group(limits);
  add(cmd->add_option("--threads", a->threads, "Threads (0: all cores; under mpirun, per rank: the cores over the ranks on each machine)")->capture_default_str()->check(non_negative()))->group(limits);
  count(cmd->add_option("--debug-nan-at-step", a->debug_nan_at_step, "Test hook: make that step's loss NaN"))->group("");
  count(cmd->add_option("--debug-interrupt-at-step", a->debug_interrupt_at_step, "Test hook: Ctrl-C at that step"))->group("");
  count(cmd->add_option("--debug-nan-weights-at-step", a->debug_nan_weights_at_step, "Test hook: a NaN weight after that step"))
      ->group("");
  add(cmd->add_option("--debug-step-seconds", a->debug_step_seconds, "Test hook: plan with this step time"))->group("");
  count(cmd->add_option("--debug-fail-at-step", a->debug_fail_at_step, "Test hook: that step throws"))->group("");
  count(cmd->add_option("--debug-exit-at-step", a->debug_exit_at_step, "Test hook: the process dies in that step"))->group("");
  add(cmd->add_option("--debug-rank", a->debug_rank, "Test hook: the hooks act on this rank only"))->group("");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace flowgrad::app
