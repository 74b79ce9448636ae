// OpenBLAS's kernel families must agree: apps/openblas_env switches this machine from
// generic (Prescott, SSE3) kernels to SkylakeX ones, so both must give the same numbers.
// OPENBLAS_CORETYPE is read only when OpenBLAS loads, so the test runs this binary twice
// as a subprocess (the "probe" case, skipped unless asked for), once per kernel family.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "autograd/blas.hpp"
#include "autograd/conv.hpp"
#include "autograd/parallel.hpp"

using namespace flowgrad;

namespace {

const char* const kProbeOut = "FLOWGRAD_KERNEL_PROBE_OUT";

Tensor<float> rand_tensor(const Shape& shape, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  xt::xarray<float> a = xt::xarray<float>::from_shape(shape);
  for (auto& v : a) v = u(rng);
  return Tensor<float>(a, true);
}

// Results of a few GEMMs and convs, one vector each.
std::vector<std::vector<float>> probe() {
  std::mt19937 rng(7);
  std::vector<std::vector<float>> out;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int m = 67, n = 45, k = 83;
      auto a = rand_tensor({std::size_t(m * k)}, rng), b = rand_tensor({std::size_t(k * n)}, rng);
      auto c = rand_tensor({std::size_t(m * n)}, rng);
      blas::gemm<float>(ta, tb, m, n, k, 0.5f, a.value().data(), ta ? m : k, b.value().data(),
                        tb ? k : n, 2.0f, c.value().data(), n);
      out.emplace_back(c.value().begin(), c.value().end());
    }
  struct Conv { Shape x, w; std::size_t stride, pad; };
  for (const Conv& cv : {Conv{{3, 5, 9, 9}, {7, 5, 3, 3}, 1, 1}, Conv{{2, 16, 6, 6}, {8, 16, 1, 1}, 1, 0},
                         Conv{{2, 4, 8, 7}, {6, 4, 2, 3}, 2, 1}}) {
    auto x = rand_tensor(cv.x, rng), w = rand_tensor(cv.w, rng), b = rand_tensor({cv.w[0]}, rng);
    auto y = conv2d(x, w, b, cv.stride, cv.pad);
    auto g = rand_tensor(y.shape(), rng);
    sum(mul(y, g.value())).backward();
    for (const xt::xarray<float>* a : {&y.value(), &x.grad(), &w.grad(), &b.grad()})
      out.emplace_back(a->begin(), a->end());
  }
  return out;
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
}

struct ProbeRun {
  std::string core;
  std::vector<std::vector<float>> results;
};

ProbeRun run_probe(const std::string& coretype) {
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(len > 0);
  self[len] = 0;
  const std::string file = "/tmp/flowgrad_kernel_probe_" + std::to_string(getpid()) + "_" + coretype;
  const std::string cmd = "OPENBLAS_CORETYPE=" + coretype + " OPENBLAS_NUM_THREADS=1 " + kProbeOut +
                          "='" + file + "' '" + self +
                          "' --no-skip -tc='openblas kernel probe' >/dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  CHECK_MESSAGE(rc == 0, "probe subprocess failed: " << cmd);
  ProbeRun run;
  std::ifstream in(file, std::ios::binary);
  std::getline(in, run.core);
  for (std::size_t n; in.read(reinterpret_cast<char*>(&n), sizeof n);) {
    std::vector<float> v(n);
    in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(float)));
    run.results.push_back(std::move(v));
  }
  std::remove(file.c_str());
  return run;
}

}  // namespace

// The subprocess side: writes the core OpenBLAS chose and the probe's results.
TEST_CASE("openblas kernel probe" * doctest::skip()) {
  const char* path = std::getenv(kProbeOut);
  REQUIRE_MESSAGE(path, "run only by 'OpenBLAS kernel families agree', which sets " << kProbeOut);
  std::ofstream out(path, std::ios::binary);
  out << blas::core_name() << "\n";
  for (const auto& v : probe()) {
    const std::size_t n = v.size();
    out.write(reinterpret_cast<const char*>(&n), sizeof n);
    out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(n * sizeof(float)));
  }
  CHECK(out.good());
}

TEST_CASE("OpenBLAS kernel families agree: Prescott vs SkylakeX within 1e-4 relative") {
  if (!cpu_has_avx512()) {
    MESSAGE("skipped: this CPU has no AVX-512, so the SkylakeX kernels cannot run here");
    return;
  }
  const ProbeRun generic = run_probe("Prescott"), fast = run_probe("SkylakeX");
  CHECK(generic.core == "Prescott");  // else OPENBLAS_CORETYPE was ignored: nothing compared
  CHECK(fast.core == "SkylakeX");
  REQUIRE(generic.results.size() == 16);
  REQUIRE(fast.results.size() == generic.results.size());
  for (std::size_t r = 0; r < generic.results.size(); ++r) {
    CAPTURE(r);
    const auto &a = generic.results[r], &b = fast.results[r];
    REQUIRE(a.size() == b.size());
    double diff = 0, scale = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
      scale = std::max(scale, std::abs(double(b[i])));
    }
    CHECK(diff <= 1e-4 * scale);
    CHECK(scale > 0);
  }
}
