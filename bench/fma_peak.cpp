// One core's peak float32 multiply-add rate, and OpenBLAS's sgemm on the GEMM shapes of
// Real NVP's convolutions: the ceiling that "GFLOP/s" figures are read against.
//
//   fma_peak            prints one line per measurement (peaks on 1 and 2 threads, then
//                       products on 1 thread: OpenBLAS's sgemm and our small_gemm)
//
// The peak loop keeps 12 independent FMA chains busy (enough to hide the FMA latency on
// current x86 cores), with 512-bit vectors where the CPU has AVX-512, else 256-bit.
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include <immintrin.h>

#include "autograd/blas.hpp"
#include "autograd/small_gemm.hpp"

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double seconds(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

__attribute__((target("avx512f"))) double peak_avx512(long iterations) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * float(i));
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-5f);
  const auto t0 = Clock::now();  // no lambda here: it would not get this function's target
  for (long it = 0; it < iterations; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  float sink = 0, lanes[16];
  for (int i = 0; i < 12; ++i) {
    _mm512_storeu_ps(lanes, acc[i]);
    sink += lanes[0];
  }
  if (sink == 1234.5f) std::puts("");  // keeps the loop alive
  return double(iterations) * 12 * 16 * 2 / s / 1e9;
}

__attribute__((target("avx2,fma"))) double peak_avx2(long iterations) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * float(i));
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-5f);
  const auto t0 = Clock::now();
  for (long it = 0; it < iterations; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  float sink = 0, lanes[8];
  for (int i = 0; i < 12; ++i) {
    _mm256_storeu_ps(lanes, acc[i]);
    sink += lanes[0];
  }
  if (sink == 1234.5f) std::puts("");
  return double(iterations) * 12 * 8 * 2 / s / 1e9;
}

void sgemm(const char* name, bool ta, bool tb, int m, int n, int k) {
  std::vector<float> a(std::size_t(m) * k, 0.01f), b(std::size_t(k) * n, 0.02f), c(std::size_t(m) * n);
  const int lda = ta ? m : k, ldb = tb ? k : n;
  auto run = [&] {
    flowgrad::blas::gemm<float>(ta, tb, m, n, k, 1.f, a.data(), lda, b.data(), ldb, 0.f, c.data(), n);
  };
  for (int i = 0; i < 3; ++i) run();
  const long reps = std::max(3L, long(4e9 / (2.0 * m * n * k)));
  const double s = seconds([&] { for (long r = 0; r < reps; ++r) run(); });
  std::printf("sgemm %-34s m=%4d n=%5d k=%4d  %6.1f GFLOP/s\n", name, m, n, k, 2.0 * m * n * k * reps / s / 1e9);
}

// Our own kernel (autograd/small_gemm.hpp) on a product of Winograd's shape, A or A^T.
void small(const char* name, bool ta, int m, int n, int k) {
  std::vector<float> a(std::size_t(m) * k, 0.01f), b(std::size_t(k) * n, 0.02f), c(std::size_t(m) * n);
  const long a_row = ta ? 1 : k, a_col = ta ? m : 1;
  auto run = [&] { flowgrad::small_gemm::multiply(m, n, k, a.data(), a_row, a_col, b.data(), n, c.data(), n, false); };
  for (int i = 0; i < 3; ++i) run();
  const long reps = std::max(3L, long(4e9 / (2.0 * m * n * k)));
  const double s = seconds([&] { for (long r = 0; r < reps; ++r) run(); });
  std::printf("%-6s %-34s m=%4d n=%5d k=%4d  %6.1f GFLOP/s\n", flowgrad::small_gemm::isa(), name, m, n, k,
              2.0 * m * n * k * reps / s / 1e9);
}

}  // namespace

int main() {
  flowgrad::blas::set_num_threads(1);
  std::printf("OpenBLAS kernels: %s, 1 thread\n", flowgrad::blas::core_name());
  if (__builtin_cpu_supports("avx512f"))
    std::printf("peak FMA, 512-bit vectors: %6.1f GFLOP/s\n", peak_avx512(20000000));
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    std::printf("peak FMA, 256-bit vectors: %6.1f GFLOP/s\n", peak_avx2(20000000));
  // The ceiling of two threads: both loops at once (two vCPUs may share one core).
  for (int bits : {512, 256}) {
    if (bits == 512 ? !__builtin_cpu_supports("avx512f")
                    : !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
      continue;
    double rate[2];
    auto peak = [bits](double& r) { r = bits == 512 ? peak_avx512(20000000) : peak_avx2(20000000); };
    std::thread other(peak, std::ref(rate[1]));
    peak(rate[0]);
    other.join();
    std::printf("peak FMA, %d-bit vectors, 2 threads at once: %6.1f GFLOP/s\n", bits, rate[0] + rate[1]);
  }
  sgemm("im2col forward, 28x28", false, false, 64, 784, 576);
  sgemm("im2col weight grad, 28x28", false, true, 64, 576, 784);
  sgemm("im2col input grad, 28x28", true, false, 576, 784, 64);
  sgemm("Winograd product (64 channels)", false, false, 64, 112, 64);
  sgemm("Winograd product, 48 tiles", false, false, 64, 48, 64);
  sgemm("NICE linear forward (x W^T)", false, true, 64, 1000, 1000);
  sgemm("NICE linear input grad (g W)", false, false, 64, 1000, 1000);
  sgemm("NICE linear weight grad (g^T x)", true, false, 1000, 1000, 64);
  for (const char* isa : {"avx512", "avx2"})
    if (flowgrad::small_gemm::set_isa(isa)) {
      small("Winograd product (64 channels)", false, 64, 112, 64);
      small("Winograd product, 48 tiles", false, 64, 48, 64);
      small("Winograd input grad, 48 tiles (A^T)", true, 64, 48, 64);
      small("Winograd weight grad, 16 tiles", false, 64, 64, 16);
      small("NICE linear forward, as W x^T", false, 1000, 64, 1000);
      small("NICE linear input grad (g W)", false, 64, 1000, 1000);
      small("NICE linear input grad, as W^T g^T", true, 1000, 64, 1000);
      small("NICE linear weight grad (g^T x)", true, 1000, 1000, 64);
    }
  sgemm("square 1024", false, false, 1024, 1024, 1024);
}
