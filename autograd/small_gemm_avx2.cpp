// small_gemm's kernel for AVX2 with FMA (compiled with -mavx2 -mfma): 6 x 16 blocks, 12
// of the 16 vector registers holding sums.
#include <immintrin.h>

#include "autograd/small_gemm_kernel.hpp"

namespace flowgrad::small_gemm {
namespace {
struct Avx2 {
  using type = __m256;
  using mask = __m256i;
  static constexpr int width = 8;
  static mask first(int n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
  }
  static type zero() { return _mm256_setzero_ps(); }
  static type load(const float* p) { return _mm256_loadu_ps(p); }
  static type load(const float* p, mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, type v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, type v, mask m) { _mm256_maskstore_ps(p, m, v); }
  static type broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_ps(a, b, c); }
  static type add(type a, type b) { return _mm256_add_ps(a, b); }
};
}  // namespace

void multiply_avx2(int m, int n, int k, const float* a, long a_row, long a_col, const float* b,
                   int ldb, float* c, int ldc, bool accumulate) {
  multiply_with<Avx2, 6, 2>(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
}

}  // namespace flowgrad::small_gemm
