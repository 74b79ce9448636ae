// conv2d forward + backward timing (bench/conv_bench.py compares it with PyTorch).
//
//   conv_bench [--threads N] [--batch 64] [--in 64] [--out 64] [--size 28] [--kernel 3]
//              [--padding 1] [--stride 1] [--reps 10] [--forward-only]
//
// Prints one JSON line: median and best milliseconds per forward+backward (gradients for
// input, weight and bias, as in a network's hidden layer), GFLOP/s of the best, and the
// best CPU time of the calling thread (with --threads 1 it is immune to other processes
// taking the core away, which wall time is not).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "apps/openblas_env.hpp"
#include "autograd/autograd.hpp"
#include "autograd/blas.hpp"
#include "autograd/conv.hpp"
#include "autograd/parallel.hpp"

using namespace flowgrad;

int main(int argc, char** argv) {
  apps::ensure_openblas_coretype(argc, argv);
  std::size_t threads = 1, batch = 64, cin = 64, cout = 64, size = 28, kernel = 3, padding = 1,
              stride = 1, reps = 10;
  bool forward_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::size_t {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "conv_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::strtoul(argv[++i], nullptr, 10);
    };
    if (a == "--threads") threads = value();
    else if (a == "--batch") batch = value();
    else if (a == "--in") cin = value();
    else if (a == "--out") cout = value();
    else if (a == "--size") size = value();
    else if (a == "--kernel") kernel = value();
    else if (a == "--padding") padding = value();
    else if (a == "--stride") stride = value();
    else if (a == "--reps") reps = std::max<std::size_t>(1, value());
    else if (a == "--forward-only") forward_only = true;
    else {
      std::fprintf(stderr, "conv_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  set_num_threads(int(threads));
  manual_seed(0);
  Tensor<float> x(normal<float>({batch, cin, size, size}), true);
  Tensor<float> w(uniform<float>({cout, cin, kernel, kernel}, -0.05f, 0.05f), true);
  Tensor<float> b(uniform<float>({cout}, -0.05f, 0.05f), true);
  xt::xarray<float> g;

  auto thread_cpu_ms = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
  };
  std::vector<double> ms, cpu_ms;
  for (std::size_t r = 0; r < reps + 2; ++r) {  // two warm-up runs
    for (auto* t : {&x, &w, &b}) t->zero_grad();
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_ms();
    Tensor<float> y = conv2d(x, w, b, stride, padding);
    if (!forward_only) {
      if (g.size() != y.size()) g = normal<float>(y.shape());
      // The op's own backward with a given output gradient: nothing else is timed.
      y.impl().node->backward(g, y.value());
    }
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const double c = thread_cpu_ms() - c0;
    if (r >= 2) ms.push_back(t), cpu_ms.push_back(c);
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu_ms.begin(), cpu_ms.end());
  const std::size_t oh = (size + 2 * padding - kernel) / stride + 1;
  const double flop = (forward_only ? 1 : 3) * 2.0 * batch * cout * cin * kernel * kernel * oh * oh;
  std::printf(
      "{\"impl\": \"flowgrad\", \"threads\": %zu, \"shape\": [%zu, %zu, %zu, %zu], \"out\": %zu, "
      "\"kernel\": %zu, \"forward_only\": %s, \"ms_median\": %.3f, \"ms_min\": %.3f, "
      "\"gflops\": %.1f, \"thread_cpu_ms_min\": %.3f, \"openblas_core\": \"%s\"}\n",
      threads, batch, cin, size, size, cout, kernel, forward_only ? "true" : "false",
      ms[ms.size() / 2], ms[0], flop / ms[0] / 1e6, cpu_ms[0], blas::core_name());
  return 0;
}
