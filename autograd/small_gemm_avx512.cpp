// small_gemm's kernel for AVX-512 (compiled with -mavx512f -mfma): 8 x 32 blocks (16 of
// the 32 vector registers holding sums) for Winograd's short products, 6 x 64 (24) for
// long ones: 2.4 multiply-adds per load instead of 1.6, and B's panel read half as often.
#include <immintrin.h>

#include "autograd/small_gemm_kernel.hpp"

namespace flowgrad::small_gemm {
namespace {
struct Avx512 {
  using type = __m512;
  using mask = __mmask16;
  static constexpr int width = 16;
  static mask first(int n) { return mask((1u << n) - 1); }
  static type zero() { return _mm512_setzero_ps(); }
  static type load(const float* p) { return _mm512_loadu_ps(p); }
  static type load(const float* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, type v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, type v, mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static type broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static type fma(type a, type b, type c) { return _mm512_fmadd_ps(a, b, c); }
  static type add(type a, type b) { return _mm512_add_ps(a, b); }
};
}  // namespace

void multiply_avx512(int m, int n, int k, const float* a, long a_row, long a_col, const float* b,
                     int ldb, float* c, int ldc, bool accumulate) {
  // Zen 4, fma_peak: NICE's 1000 x 64 x 1000 108 -> 115 GFLOP/s (peak 117) on 6 x 64, but
  // Winograd's 64 x 112 x 64 105 -> 97 (a block's sums cost more against k = 64).
  if (k >= 256 || m >= 256)
    multiply_with<Avx512, 6, 4>(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
  else
    multiply_with<Avx512, 8, 2>(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
}

}  // namespace flowgrad::small_gemm
