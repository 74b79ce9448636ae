// `flowgrad bench`: times training steps of a bench config, as the reference's bench does
// (/work/shared/reference/torch_flows.py): fixed random batch in [0,1), 3 warm-up steps,
// then S timed steps of zero_grad, loss = -mean log p(x), backward, Adam(lr 1e-4) step.
// Prints one JSON line with the reference's fields plus peak RSS, achieved GFLOP/s and
// OpenBLAS's kernel family.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "autograd/autograd.hpp"
#include "autograd/blas.hpp"
#include "autograd/parallel.hpp"
#include "autograd/profile.hpp"
#include "flows/models.hpp"
#include "nn/optim.hpp"

namespace flowgrad::app {

namespace {

struct BenchOptions {
  std::string model = "realnvp";
  int threads = 1;
  int steps = 10;
  int batch = 64;
  bool profile = false;
};

double product(const Shape& s, std::size_t from = 0, std::size_t to = std::size_t(-1)) {
  double p = 1;
  for (std::size_t i = from; i < std::min(to, s.size()); ++i) p *= double(s[i]);
  return p;
}

// Multiply-adds (x2) of every conv2d, linear and matmul in the graph that ends at `loss`,
// forward plus the backward products that will run (one per input that requires grad).
// Read off the recorded graph, so it is exact for whatever the model does this step.
double graph_flops(const Tensor<float>& loss) {
  using Impl = TensorImpl<float>;
  double flops = 0;
  std::unordered_set<const Node<float>*> seen;
  std::vector<std::shared_ptr<Impl>> stack{loss.impl_ptr()};
  while (!stack.empty()) {
    auto t = std::move(stack.back());
    stack.pop_back();
    const auto& node = t->node;
    if (!node || !seen.insert(node.get()).second) continue;
    const auto& in = node->inputs;
    double fwd = 0;
    if (node->name == "conv2d" && in.size() >= 2) {  // 2 * N*O*OH*OW * C*kh*kw
      fwd = 2 * product(to_shape(t->value.shape())) * product(in[1].shape(), 1);
    } else if (node->name == "linear" && in.size() >= 2) {  // 2 * N * in * out
      fwd = 2 * product(in[0].shape()) * double(in[1].shape()[0]);
    } else if (node->name == "matmul" && in.size() == 2) {  // 2 * batch*m*n * k
      fwd = 2 * product(to_shape(t->value.shape())) * double(in[0].shape().back());
    }
    if (fwd > 0) {
      flops += fwd;
      for (std::size_t i = 0; i < std::min<std::size_t>(2, in.size()); ++i)
        if (in[i].defined() && in[i].requires_grad()) flops += fwd;
    }
    for (const auto& i : in)
      if (i.defined() && i.impl().node) stack.push_back(i.impl_ptr());
  }
  return flops;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

void run_bench(const BenchOptions& o) {
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  set_num_threads(o.threads);  // OpenBLAS and our parallel_for alike
  manual_seed(0);
  auto model = flows::make_bench_model<float>(o.model);
  model->set_actnorm_data_init(false);  // the reference's bench starts from the plain init
  nn::Adam<float> opt(model->named_parameters(), 1e-4);
  Shape shape{std::size_t(o.batch)};
  for (auto s : model->input_shape()) shape.push_back(s);
  const Tensor<float> x(uniform<float>(shape, 0.0f, 1.0f));

  double flops = 0;
  auto step = [&](bool count) {
    opt.zero_grad();
    profile::mark("optimizer zero_grad");
    auto loss = -mean(model->log_prob(x));
    if (count) flops = graph_flops(loss);
    loss.backward();
    opt.step();
    profile::mark("optimizer step");
    return loss.item();
  };
  for (int i = 0; i < 3; ++i) step(i == 0);
  if (o.profile) profile::enable(true);
  std::vector<double> times;
  for (int i = 0; i < o.steps; ++i) {
    const auto t0 = Clock::now();
    step(false);
    times.push_back(ms_since(t0));
  }
  if (o.profile) profile::enable(false);
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  double forward_ms;
  {
    NoGrad no_grad;
    const auto t0 = Clock::now();
    model->log_prob(x);
    forward_ms = ms_since(t0);
  }
  nlohmann::ordered_json j;
  j["model"] = o.model;
  j["threads"] = o.threads;
  j["batch"] = o.batch;
  j["params"] = model->parameter_count();
  j["train_step_ms_median"] = median;
  j["train_step_ms_min"] = times.front();
  j["forward_nograd_ms"] = forward_ms;
  j["images_per_s"] = o.batch / (median / 1000.0);
  j["peak_rss_mb"] = peak_rss_mb();
  j["gflop_per_step"] = flops / 1e9;
  j["gflops"] = flops / 1e9 / (median / 1000.0);
  j["blas_core"] = blas::core_name();
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  if (o.profile) std::fputs(profile::report(o.steps).c_str(), stderr);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "Time training steps of a bench config (compare with "
                                          "the PyTorch reference's --steps bench)");
  cmd->add_option("--model", o->model, "Bench config")
      ->check(CLI::IsMember({"nice", "realnvp", "glow"}))
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads for OpenBLAS and the batch loops")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--steps", o->steps, "Timed training steps (after 3 warm-up steps)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Images per step")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_flag("--profile", o->profile,
                "Also print, on stderr, where the timed steps spent their time, per op");
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace flowgrad::app
