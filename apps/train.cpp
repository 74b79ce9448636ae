// `flowgrad train`: the reference's recipe (Adam, linear warmup, gradient-norm clipping,
// uniform dequantization, ActNorm's data-dependent init on the first batch), test bits/dim
// on the whole test set each epoch, and a run directory that can be resumed exactly.
//
// A run directory holds config.json, metrics.jsonl, curve.svg, samples_T0.7.png,
// samples_T1.0.png and checkpoint.safetensors (model, Adam state, step, the three random
// generators and the position in the epoch; the config in its metadata). Everything is
// validated and the data loaded before the directory is created, so a bad command line
// or bad data leaves nothing behind.
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
#include "autograd/memory.hpp"
#include "autograd/parallel.hpp"
#include "autograd/random.hpp"
#include "autograd/reduce.hpp"
#include "datasets/batching.hpp"
#include "flows/bits_per_dim.hpp"
#include "nn/checkpoint.hpp"
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
  int threads = 0;
  std::size_t debug_nan_at_step = 0;  // test hook: the loss of that step is NaN
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
    {"--flip", {"train", "flip"}},
};

std::string state_of(const Generator& g) {
  std::ostringstream os;
  os << g;
  return os.str();
}

void restore(Generator& g, const std::string& state, const std::string& what) {
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
};

nlohmann::json metric_json(const Metric& m) {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"step", m.step}, {"epoch", std::round(m.epoch * 1000) / 1000}, {"seconds", std::round(m.seconds * 10) / 10},
          {"train_bpd", num(m.train_bpd)}, {"test_bpd", num(m.test_bpd)}};
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
               num(j.at("test_bpd"))};
      if (m.step <= max_step) out.push_back(m);
    } catch (const std::exception&) {
      // A line cut by a crash: dropped, the run goes on.
    }
  }
  return out;
}

void write_text_atomically(const std::string& path, const std::string& text) {
  nn::write_atomically(path, {{text.data(), text.size()}});
}

// Everything besides the model and optimizer that the next step depends on.
struct LoopState {
  std::size_t epochs_done = 0;     // complete epochs
  std::size_t batch_in_epoch = 0;  // batches of the current epoch already trained on
  std::string shuffle_epoch_start; // the shuffle generator before this epoch's permutation
  double seconds_before = 0;       // wall time of the run before this process
  double bpd_sum = 0;              // train bits/dim summed since the last evaluation
  std::size_t bpd_count = 0;
  std::int64_t last_eval_step = -1;
};

std::string meta(const nn::Metadata& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  if (it == m.end()) throw std::runtime_error(path + ": metadata '" + key + "' is missing: cannot resume from it");
  return it->second;
}

// A number from the metadata; a clear error naming the key for anything else.
template <class N>
N meta_number(const nn::Metadata& m, const std::string& key, const std::string& path) {
  const std::string text = meta(m, key, path);
  try {
    std::size_t used = 0;
    N v;
    if constexpr (std::is_floating_point_v<N>) v = N(std::stod(text, &used));
    else if constexpr (std::is_signed_v<N>) v = N(std::stoll(text, &used));
    else v = N(std::stoull(text, &used));
    if (used == text.size() && (std::is_signed_v<N> || text.find('-') == std::string::npos)) return v;
  } catch (const std::exception&) {
  }
  throw std::runtime_error(path + ": metadata '" + key + "' is not a valid number: '" + text + "'");
}

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

void run_train(TrainArgs& a) {
  const bool resume = !a.resume.empty();
  RunConfig cfg;
  std::string run_dir, ckpt_path;
  nn::Metadata ckpt_meta;
  if (resume) {
    std::error_code ec;
    if (a.given("--out") && fs::weakly_canonical(a.out, ec) != fs::weakly_canonical(a.resume, ec))
      throw UsageError("--out " + a.out + " and --resume " + a.resume +
                       " differ: a resumed run continues in its own directory (drop --out)");
    if (!fs::is_directory(a.resume, ec))
      throw UsageError("--resume " + a.resume + ": not a run directory (expected the --out directory of a train run)");
    run_dir = a.resume;
    ckpt_path = resolve_checkpoint(run_dir);
    ckpt_meta = nn::load_safetensors(ckpt_path).metadata;
    cfg = read_run_config(ckpt_meta, ckpt_path);
    check_resume_options(a, cfg, ckpt_path);
    if (a.given("--data-dir")) cfg.train.data_dir = a.config.train.data_dir.empty() ? "" : fs::absolute(a.config.train.data_dir).string();
    if (a.given("--epochs") || a.given("--steps") || a.given("--minutes")) {
      cfg.train.epochs = a.config.train.epochs, cfg.train.steps = a.config.train.steps;
      cfg.train.minutes = a.config.train.minutes;
    }
    if (a.given("--eval-every")) cfg.train.eval_every = a.config.train.eval_every;
    if (a.given("--checkpoint-every")) cfg.train.checkpoint_every = a.config.train.checkpoint_every;
  } else {
    for (const char* required : {"--model", "--dataset", "--out"})
      if (!a.given(required)) throw UsageError(std::string(required) + " is required for a new run (or --resume RUN_DIR)");
    cfg = a.config;
    nominal_image_shape(cfg.train.dataset, cfg.model.channels, cfg.model.height, cfg.model.width);
    fill_model_defaults(cfg.model);
    validate_model(cfg.model);
    if (!cfg.train.epochs && !cfg.train.steps && cfg.train.minutes <= 0) cfg.train.epochs = 1;
    if (!cfg.train.data_dir.empty()) cfg.train.data_dir = fs::absolute(cfg.train.data_dir).string();
    run_dir = a.out;
    std::error_code ec;
    if (fs::exists(run_dir, ec)) {
      if (!fs::is_directory(run_dir, ec)) throw UsageError("--out " + run_dir + ": exists and is not a directory");
      if (!fs::is_empty(run_dir, ec))
        throw UsageError("--out " + run_dir +
                         ": already holds files; continue that run with --resume " + run_dir + ", or choose another --out");
    }
  }
  validate_train(cfg.train);
  set_num_threads(a.threads);
  retain_freed_memory();  // each step re-uses the last step's memory instead of faulting it in again

  // The data, before anything is written.
  const data::ImageDataset train = data::load_dataset(cfg.train.dataset, cfg.train.data_dir, "train");
  const data::ImageDataset test = data::load_dataset(cfg.train.dataset, cfg.train.data_dir, "test");
  if (test.channels() != train.channels() || test.height() != train.height() || test.width() != train.width())
    throw data::DataError(test.source + ": " + std::to_string(test.height()) + "x" + std::to_string(test.width()) +
                          " images, expected the training set's " + std::to_string(train.height()) + "x" +
                          std::to_string(train.width()));
  if (!resume && (train.channels() != cfg.model.channels || train.height() != cfg.model.height ||
                  train.width() != cfg.model.width)) {
    // Files of another image size than the dataset usually has: size the model to them.
    cfg.model = a.config.model;
    cfg.model.channels = train.channels(), cfg.model.height = train.height(), cfg.model.width = train.width();
    fill_model_defaults(cfg.model);
    validate_model(cfg.model);
  }
  check_image_shape(cfg.model, train);
  if (cfg.train.batch > train.size())
    throw UsageError("--batch " + std::to_string(cfg.train.batch) + " is larger than the " +
                     std::to_string(train.size()) + " images of " + train.source);

  manual_seed(cfg.train.seed);
  auto model = build_model(cfg.model);
  const std::size_t dims = model->dims();
  nn::Adam<float> opt(model->named_parameters(), cfg.train.lr);
  const nn::LinearWarmup schedule{cfg.train.lr, cfg.train.warmup};
  Generator shuffle_rng(cfg.train.seed ^ 0x53485546464c45ULL), noise_rng(cfg.train.seed ^ 0x4e4f495345ULL);
  LoopState st;
  std::vector<Metric> metrics;
  const std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();
  if (resume) {
    try {
      ckpt_meta = nn::load_checkpoint(ckpt_path, *model, opt, true);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(e.what()) + " (the checkpoint does not fit the " + describe(cfg.model) +
                               " its own metadata describes)");
    }
    st.epochs_done = meta_number<std::size_t>(ckpt_meta, "epoch", ckpt_path);
    st.batch_in_epoch = meta_number<std::size_t>(ckpt_meta, "batch_in_epoch", ckpt_path);
    st.shuffle_epoch_start = meta(ckpt_meta, "shuffle_rng", ckpt_path);
    restore(shuffle_rng, st.shuffle_epoch_start, ckpt_path + ": metadata 'shuffle_rng'");
    restore(noise_rng, meta(ckpt_meta, "noise_rng", ckpt_path), ckpt_path + ": metadata 'noise_rng'");
    st.seconds_before = meta_number<double>(ckpt_meta, "seconds", ckpt_path);
    st.bpd_sum = meta_number<double>(ckpt_meta, "bpd_sum", ckpt_path);
    st.bpd_count = meta_number<std::size_t>(ckpt_meta, "bpd_count", ckpt_path);
    st.last_eval_step = meta_number<std::int64_t>(ckpt_meta, "last_eval_step", ckpt_path);
    metrics = read_metrics(metrics_path, opt.step_count());
  } else {
    fs::create_directories(run_dir);
    st.shuffle_epoch_start = state_of(shuffle_rng);
  }

  data::Batcher batcher(train, {cfg.train.batch, true, cfg.train.flip}, shuffle_rng);
  const std::size_t per_epoch = batcher.batches_per_epoch();
  data::Batch batch;
  if (resume) {
    const auto images = meta_number<std::size_t>(ckpt_meta, "train_images", ckpt_path);
    if (images != train.size())
      throw UsageError(train.source + " has " + std::to_string(train.size()) + " images, but the run in " + run_dir +
                       " was trained on " + std::to_string(images) + ": it can only resume on the same data");
    if (st.batch_in_epoch >= per_epoch)
      throw std::runtime_error(ckpt_path + ": metadata 'batch_in_epoch' " + std::to_string(st.batch_in_epoch) +
                               " is past the end of an epoch of " + std::to_string(per_epoch) + " batches");
  }
  for (std::size_t i = 0; i < st.batch_in_epoch; ++i) batcher.next(batch);  // replay the epoch's draws
  write_text_atomically((fs::path(run_dir) / "config.json").string(), to_json(cfg).dump(2) + "\n");

  const std::int64_t first_step = opt.step_count();
  std::int64_t last_checkpoint_step = first_step;
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return st.seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const std::string ckpt_file = (fs::path(run_dir) / kCheckpointName).string();
  auto checkpoint = [&] {
    nn::Metadata m{{"format", kCheckpointFormat},
                   {"config", to_json(cfg).dump()},
                   {"epoch", std::to_string(st.epochs_done)},
                   {"batch_in_epoch", std::to_string(st.batch_in_epoch)},
                   {"shuffle_rng", st.batch_in_epoch ? st.shuffle_epoch_start : state_of(shuffle_rng)},
                   {"noise_rng", state_of(noise_rng)},
                   {"seconds", exact(seconds())},
                   {"bpd_sum", exact(st.bpd_sum)},
                   {"bpd_count", std::to_string(st.bpd_count)},
                   {"last_eval_step", std::to_string(st.last_eval_step)},
                   {"train_images", std::to_string(train.size())},
                   {"producer", std::string("flowgrad ") + FLOWGRAD_VERSION}};
    nn::save_checkpoint(ckpt_file, *model, opt, m);
    last_checkpoint_step = opt.step_count();
  };
  if (!resume) checkpoint();  // step 0: a run directory always holds a checkpoint

  const auto& t = cfg.train;
  std::size_t total_steps = t.steps;
  if (t.epochs && (!total_steps || t.epochs * per_epoch < total_steps)) total_steps = t.epochs * per_epoch;
  const double time_limit = t.minutes > 0 ? std::max(0.0, t.minutes * 60 - st.seconds_before) : 0;
  auto limits_reached = [&] {
    return (t.steps && std::size_t(opt.step_count()) >= t.steps) || (t.epochs && st.epochs_done >= t.epochs) ||
           (t.minutes > 0 && seconds() >= t.minutes * 60);
  };

  std::printf("model: %s, %s parameters\n", describe(cfg.model).c_str(), with_commas(model->parameter_count()).c_str());
  std::printf("data: %s (%s images), test %s images\n", train.source.c_str(), with_commas(train.size()).c_str(),
              with_commas(test.size()).c_str());
  std::printf("recipe: Adam lr %g, warmup %lld steps, clip %g, batch %zu (%zu steps per epoch), %d threads, seed %llu\n",
              t.lr, (long long)t.warmup, t.clip, t.batch, per_epoch, num_threads(), (unsigned long long)t.seed);
  std::string limits;
  if (t.epochs) limits += std::to_string(t.epochs) + (t.epochs == 1 ? " epoch" : " epochs");
  if (t.steps) limits += (limits.empty() ? "" : " or ") + std::to_string(t.steps) + " steps";
  if (t.minutes > 0) limits += (limits.empty() ? "" : " or ") + fixed(t.minutes, 1) + " minutes";
  const bool several = (t.epochs ? 1 : 0) + (t.steps ? 1 : 0) + (t.minutes > 0 ? 1 : 0) > 1;
  std::printf("%s %s: until %s%s\n", resume ? "resuming" : "writing", run_dir.c_str(), limits.c_str(),
              several ? ", whichever comes first" : "");
  if (resume)
    std::printf("resumed at step %lld (epoch %zu, batch %zu of %zu)\n", (long long)first_step, st.epochs_done + 1,
                st.batch_in_epoch, per_epoch);
  std::fflush(stdout);

  Progress progress(total_steps, time_limit, 1, std::size_t(first_step));
  const std::string title = cfg.model.name + " on " + t.dataset + ": bits/dim";
  double last_test_bpd = NAN;
  auto evaluate = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    const double step_seconds = seconds();
    const double test_bpd = test_bits_per_dim(*model, test);
    const double train_bpd = st.bpd_count ? st.bpd_sum / double(st.bpd_count) : NAN;
    const std::int64_t step = opt.step_count();
    metrics.push_back({step, double(st.epochs_done) + double(st.batch_in_epoch) / double(per_epoch), step_seconds,
                       train_bpd, test_bpd});
    st.bpd_sum = 0, st.bpd_count = 0, st.last_eval_step = step;
    last_test_bpd = test_bpd;
    std::string lines;
    std::vector<std::pair<double, double>> train_points, test_points;
    for (auto& m : metrics) {
      lines += metric_json(m).dump() + "\n";
      train_points.emplace_back(double(m.step), m.train_bpd);
      test_points.emplace_back(double(m.step), m.test_bpd);
    }
    write_text_atomically(metrics_path, lines);
    write_curve_svg((fs::path(run_dir) / "curve.svg").string(),
                    {{"train", "#1f77b4", train_points}, {"test", "#d62728", test_points}}, title);
    std::string bad;
    for (double temperature : {0.7, 1.0}) {
      const std::string name = "samples_T" + fixed(temperature, 1) + ".png";
      const std::size_t n = write_samples(*model, cfg.model, (fs::path(run_dir) / name).string(), 64, temperature,
                                          t.seed + 1);
      if (n) bad += "; " + name + ": " + std::to_string(n) + " of 64 samples not finite (drawn as grey tiles)";
    }
    const double eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress.print_line("step " + std::to_string(step) + " (" + fixed(metrics.back().epoch, 2) + " epochs)  train " +
                        fixed(train_bpd, 4) + "  test " + fixed(test_bpd, 4) + " bits/dim  (" +
                        format_duration(step_seconds) + ", eval " + fixed(eval_s, 1) + " s)" + bad);
  };

  if (limits_reached()) {
    if (st.last_eval_step != opt.step_count()) {
      evaluate();
      checkpoint();
    }
    std::printf("the run is already complete at step %lld (%s); give a larger --epochs, --steps or --minutes "
                "to train further\n",
                (long long)opt.step_count(), limits.c_str());
    return;
  }

  g_interrupted = 0;
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  double train_seconds = 0;
  std::size_t images_done = 0;
  auto last_log = std::chrono::steady_clock::now() - std::chrono::hours(1);
  const auto params = model->named_parameters();
  for (;;) {
    if (st.batch_in_epoch == 0) st.shuffle_epoch_start = state_of(shuffle_rng);
    if (!batcher.next(batch)) throw std::logic_error("train: the batcher ended an epoch early");
    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t step = opt.step_count();  // this step's index, from 0
    xt::xarray<float> x = data::dequantize<float>(batch.images, noise_rng);
    to_model_shape(x, *model);
    opt.set_lr(schedule.lr(step));
    opt.zero_grad();
    const Tensor<float> loss = mean(-model->log_prob(Tensor<float>(std::move(x))));  // nats per image
    double loss_nats = loss.item();
    if (a.debug_nan_at_step && std::size_t(step + 1) == a.debug_nan_at_step) loss_nats = NAN;
    auto diverged = [&](const std::string& what) {
      progress.finish();
      return std::runtime_error("step " + std::to_string(step + 1) + ": " + what +
                                ": training diverged and stops here. Try a lower --lr (now " + general(t.lr) +
                                ") or a longer --warmup (now " + std::to_string(t.warmup) +
                                " steps). The last good checkpoint, " + ckpt_file + " (step " +
                                std::to_string(last_checkpoint_step) + "), is kept");
    };
    if (!std::isfinite(loss_nats)) throw diverged("the loss is " + std::string(std::isnan(loss_nats) ? "NaN" : "infinite"));
    loss.backward();
    if (t.clip > 0) {
      const double norm = nn::clip_grad_norm(params, t.clip);
      if (!std::isfinite(norm)) throw diverged("the gradient norm is not finite");
    }
    opt.step();
    const double bpd = flows::bits_per_dim(-loss_nats, dims);
    st.bpd_sum += bpd, ++st.bpd_count, ++st.batch_in_epoch;
    const auto t1 = std::chrono::steady_clock::now();
    train_seconds += std::chrono::duration<double>(t1 - t0).count();
    images_done += batch.labels.size();

    const bool epoch_end = st.batch_in_epoch == per_epoch;
    if (epoch_end) {
      data::Batch none;
      batcher.next(none);  // false: closes the epoch without drawing
      ++st.epochs_done, st.batch_in_epoch = 0;
    }
    const std::int64_t done = opt.step_count();
    if (progress.tty() || t1 - last_log >= std::chrono::seconds(10) || done == first_step + 1) {
      last_log = t1;
      progress.update(std::size_t(done), st.epochs_done + (st.batch_in_epoch ? 1 : 0), bpd,
                      double(images_done) / std::max(train_seconds, 1e-9));
    }
    const bool interrupted = g_interrupted != 0;
    const bool stop = limits_reached();
    const bool eval_now = epoch_end || (t.eval_every && done % std::int64_t(t.eval_every) == 0) || (stop && !interrupted);
    if (eval_now) evaluate();
    if (interrupted) {
      checkpoint();
      progress.print_line("interrupted at step " + std::to_string(done) + ": " + ckpt_file +
                          " saved; continue with: flowgrad train --resume " + run_dir);
      progress.finish();
      throw CommandExit{130};
    }
    if (eval_now || (t.checkpoint_every && done % std::int64_t(t.checkpoint_every) == 0)) checkpoint();
    if (stop) break;
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  progress.finish();
  const std::string dir = run_dir + (run_dir.empty() || run_dir.back() == '/' ? "" : "/");
  std::printf("done: step %lld (%s epochs), %s\n", (long long)opt.step_count(),
              fixed(metrics.back().epoch, 2).c_str(), format_duration(seconds()).c_str());
  std::printf("test bits/dim: %s (%s test images)\n", fixed(last_test_bpd, 4).c_str(), with_commas(test.size()).c_str());
  std::printf("samples: %ssamples_T0.7.png %ssamples_T1.0.png\n", dir.c_str(), dir.c_str());
  std::printf("curve: %scurve.svg  metrics: %smetrics.jsonl  checkpoint: %s%s\n", dir.c_str(), dir.c_str(),
              dir.c_str(), kCheckpointName);
  std::fflush(stdout);
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
  add(cmd->add_flag("--bench-config", m.bench, "The reference's architecture (torch_flows.py) instead of the small default"))
      ->group("Model size (defaults: small, for a CPU)");
  const char* size = "Model size (defaults: small, for a CPU)";
  count(cmd->add_option("--levels", m.levels, "glow: levels L (default 2; 3 on 32x32); realnvp: scales (default 2)"))->group(size);
  count(cmd->add_option("--flow-steps", m.flow_steps, "glow: steps K per level (default 4)"))->group(size);
  count(cmd->add_option("--hidden", m.hidden, "Width of the inner nets (glow 64, realnvp 32, nice 500)"))->group(size);
  count(cmd->add_option("--couplings", m.couplings, "nice: couplings (4); realnvp: couplings per stage (2)"))->group(size);
  count(cmd->add_option("--blocks", m.blocks, "realnvp: residual blocks per s/t net (1)"))->group(size);
  count(cmd->add_option("--layers", m.layers, "nice: hidden layers per coupling MLP (4)"))->group(size);
  add(cmd->add_flag("--additive", m.additive, "glow: additive instead of affine coupling"))->group(size);
  add(cmd->add_flag("--learn-top", m.learn_top, "glow: learned top prior"))->group(size);
  add(cmd->add_option("--prior", m.prior, "nice: logistic (default) or gaussian"))->group(size);
  add(cmd->add_option("--logit-alpha", m.logit_alpha, "> 0: a logit layer first, with this alpha (default 0: none)"))->group(size);
  const char* recipe = "Recipe";
  count(cmd->add_option("--batch", t.batch, "Batch size")->capture_default_str())->group(recipe);
  add(cmd->add_option("--lr", t.lr, "Adam learning rate")->capture_default_str())->group(recipe);
  add(cmd->add_option("--warmup", t.warmup, "Steps of linear learning-rate warmup")->capture_default_str())->group(recipe);
  add(cmd->add_option("--clip", t.clip, "Gradient-norm clipping (0: off)")->capture_default_str())->group(recipe);
  count(cmd->add_option("--seed", t.seed, "Random seed (initialisation, shuffling, noise)")->capture_default_str())->group(recipe);
  add(cmd->add_flag("--flip", t.flip, "Random left-right flips of training images"))->group(recipe);
  const char* limits = "Length and schedule";
  count(cmd->add_option("--epochs", t.epochs, "Stop after this many epochs in all"))->group(limits);
  count(cmd->add_option("--steps", t.steps, "Stop after this many steps in all"))->group(limits);
  add(cmd->add_option("--minutes", t.minutes, "Stop after this many minutes of wall time in all"))->group(limits);
  count(cmd->add_option("--eval-every", t.eval_every, "Also evaluate every N steps (0: at epoch ends only)"))->group(limits);
  count(cmd->add_option("--checkpoint-every", t.checkpoint_every, "Also checkpoint every N steps (0: at evaluations)"))->group(limits);
  add(cmd->add_option("--threads", a->threads, "Threads (0: all cores)")->capture_default_str()->check(non_negative()))->group(limits);
  count(cmd->add_option("--debug-nan-at-step", a->debug_nan_at_step, "Test hook: make that step's loss NaN"))->group("");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace flowgrad::app
