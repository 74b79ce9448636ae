// `flowgrad bench`: times training steps of a bench config, as the reference's bench does
// (/work/shared/reference/torch_flows.py): fixed random batch in [0,1), 3 warm-up steps,
// then S timed steps of zero_grad, loss = -mean log p(x), backward, Adam(lr 1e-4) step.
// Prints one JSON line with the reference's fields plus peak RSS, achieved GFLOP/s and
// OpenBLAS's kernel family. Under mpirun, data-parallel: each rank steps on its shard of
// the batch and the gradients are summed (nn/distributed.hpp), as DDP would do it.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "autograd/autograd.hpp"
#include "autograd/blas.hpp"
#include "autograd/memory.hpp"
#include "autograd/parallel.hpp"
#include "autograd/profile.hpp"
#include "autograd/small_gemm.hpp"
#include "datasets/batching.hpp"
#include "nn/distributed.hpp"
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
  bool retain_memory = true;
  std::string conv = "fastest";
};

// The product of s[from:].
double product(const Shape& s, std::size_t from = 0) {
  double p = 1;
  for (auto it = s.begin() + std::ptrdiff_t(std::min(from, s.size())); it != s.end(); ++it) p *= double(*it);
  return p;
}

struct GraphStats {
  double flops = 0;                    // per step, forward + backward
  std::map<std::string, double> bytes;  // values alive at the end of forward, by the op that made them
};

// Walks the graph that ends at `loss`. FLOPs: multiply-adds (x2) of every conv2d, linear
// and matmul, forward plus the backward products that will run (one per input that
// requires grad); read off the recorded graph, so exact for whatever the model did.
// Bytes: every value the graph keeps alive until backward, parameters and the input
// batch under "(leaves)".
GraphStats graph_stats(const Tensor<float>& loss) {
  using Impl = TensorImpl<float>;
  GraphStats st;
  std::unordered_set<const Impl*> seen;
  std::vector<std::shared_ptr<Impl>> stack{loss.impl_ptr()};
  while (!stack.empty()) {
    auto t = std::move(stack.back());
    stack.pop_back();
    if (!seen.insert(t.get()).second) continue;
    const auto& node = t->node;
    st.bytes[node ? node->name : "(leaves)"] += double(t->value.size() * sizeof(float));
    if (!node) continue;
    const auto& in = node->inputs;
    double fwd = 0;
    if (node->name == "conv2d" && in.size() >= 2) {  // 2 * N*O*OH*OW * C*kh*kw
      fwd = 2 * product(node->shape) * product(in[1].shape(), 1);
    } else if (node->name == "linear" && in.size() >= 2) {  // 2 * N * in * out
      fwd = 2 * product(in[0].shape()) * double(in[1].shape()[0]);
    } else if (node->name == "matmul" && in.size() == 2) {  // 2 * batch*m*n * k
      fwd = 2 * product(node->shape) * double(in[0].shape().back());
    }
    if (fwd > 0) {
      st.flops += fwd;
      for (std::size_t i = 0; i < std::min<std::size_t>(2, in.size()); ++i)
        if (in[i].defined() && in[i].requires_grad()) st.flops += fwd;
    }
    for (const auto& i : in)
      if (i.defined()) stack.push_back(i.impl_ptr());
  }
  return st;
}

std::string memory_report(const GraphStats& st) {
  std::vector<std::pair<std::string, double>> rows(st.bytes.begin(), st.bytes.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  double total = 0;
  for (const auto& r : rows) total += r.second;
  std::string out = "values alive at the end of forward, by the op that made them (MB):\n";
  char line[120];
  for (const auto& [op, bytes] : rows) {
    std::snprintf(line, sizeof line, "  %-22s %9.1f\n", op.c_str(), bytes / 1048576.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-22s %9.1f\n", "total", total / 1048576.0);
  return out + line;
}

double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6;
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
  nn::Communicator& group = process_group();
  set_num_threads(o.threads);  // OpenBLAS and our parallel_for alike, per rank
  set_conv_algorithm(o.conv == "im2col"         ? ConvAlgorithm::im2col
                    : o.conv == "winograd-2x2" ? ConvAlgorithm::winograd_2x2
                                               : ConvAlgorithm::fastest);
  if (o.retain_memory) retain_freed_memory();  // steps re-use freed memory instead of faulting it in
  manual_seed(0);
  auto model = flows::make_bench_model<float>(o.model);
  model->set_actnorm_data_init(false);  // the reference's bench starts from the plain init
  nn::Adam<float> opt(model->named_parameters(), 1e-4);
  Shape shape{std::size_t(o.batch)};
  for (auto s : model->input_shape()) shape.push_back(s);
  const xt::xarray<float> batch = uniform<float>(shape, 0.0f, 1.0f);  // the same on every rank
  nn::broadcast_state(*model, group);
  const Tensor<float> x(group.size() == 1 ? batch
                                          : data::take_rows(batch, data::shard_of(std::size_t(o.batch), std::size_t(group.rank()),
                                                                                   std::size_t(group.size()))));
  const auto params = model->named_parameters();

  GraphStats stats;
  auto step = [&](bool count) {
    opt.zero_grad();
    profile::mark("optimizer zero_grad");
    auto loss = mul(sum(-model->log_prob(x)), 1.0f / float(o.batch));  // -mean over the whole batch
    if (count) stats = graph_stats(loss);
    loss.backward();
    profile::mark("(backward's last op)");
    nn::allreduce_gradients(params, group);
    profile::mark("allreduce gradients");
    opt.step();
    profile::mark("optimizer step");
    const float value = loss.item();
    loss = Tensor<float>();
    profile::mark("free loss");
    return value;
  };
  for (int i = 0; i < 3; ++i) step(i == 0);
  if (o.profile) profile::enable(true);
  std::vector<double> times;
  const double cpu0 = process_cpu_ms();
  for (int i = 0; i < o.steps; ++i) {
    const auto t0 = Clock::now();
    step(false);
    times.push_back(ms_since(t0));
  }
  const double cpu_per_step = (process_cpu_ms() - cpu0) / o.steps;
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
  stats.flops *= double(group.size());  // every rank did its share
  if (!group.is_root()) return;
  nlohmann::ordered_json j;
  j["model"] = o.model;
  j["threads"] = o.threads;
  if (group.size() > 1) j["ranks"] = group.size();
  j["batch"] = o.batch;
  j["params"] = model->parameter_count();
  j["train_step_ms_median"] = median;
  j["train_step_ms_min"] = times.front();
  j["forward_nograd_ms"] = forward_ms;
  j["images_per_s"] = o.batch / (median / 1000.0);
  j["cpu_ms_per_step"] = cpu_per_step;  // all threads; at 1 thread, immune to other load
  j["peak_rss_mb"] = peak_rss_mb();
  j["gflop_per_step"] = stats.flops / 1e9;
  j["gflops"] = stats.flops / 1e9 / (median / 1000.0);
  j["blas_core"] = blas::core_name();
  j["products"] = small_gemm::isa();  // the kernel of Winograd's products
  j["conv"] = o.conv;
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  if (o.profile) {
    std::fputs(profile::report(o.steps).c_str(), stderr);
    std::fputs(memory_report(stats).c_str(), stderr);
  }
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
  cmd->add_option("--conv", o->conv,
                  "Convolution algorithm: fastest (Winograd for 3x3 convs with 16+ channels), "
                  "winograd-2x2 (F(2x2, 3x3) only) or im2col (always im2col + GEMM), to compare")
      ->check(CLI::IsMember({"fastest", "winograd-2x2", "im2col"}))
      ->capture_default_str();
  cmd->add_flag("!--no-retain-memory", o->retain_memory,
                "Let malloc hand freed memory back to the kernel (to measure what retain_freed_memory saves)");
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace flowgrad::app
