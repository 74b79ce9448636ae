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

// dst[j * ld_dst + i] = src[i * ld_src + j]: 8 x 8 blocks through registers (24 shuffles
// against 64 scalar loads and stores), the edges one element at a time.
void transpose_avx2(int rows, int cols, const float* src, long ld_src, float* dst, long ld_dst) {
  int i = 0;
  for (; i + 8 <= rows; i += 8) {
    int j = 0;
    for (; j + 8 <= cols; j += 8) {
      __m256 r[8], t[8], s[8];
      for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(src + (i + q) * ld_src + j);
      for (int q = 0; q < 8; q += 2) {
        t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
        t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
      }
      for (int q = 0; q < 8; q += 4) {
        s[q] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(3, 2, 3, 2));
      }
      for (int q = 0; q < 4; ++q) {
        _mm256_storeu_ps(dst + (j + q) * ld_dst + i, _mm256_permute2f128_ps(s[q], s[q + 4], 0x20));
        _mm256_storeu_ps(dst + (j + q + 4) * ld_dst + i, _mm256_permute2f128_ps(s[q], s[q + 4], 0x31));
      }
    }
    for (; j < cols; ++j)
      for (int q = 0; q < 8; ++q) dst[j * ld_dst + i + q] = src[(i + q) * ld_src + j];
  }
  for (; i < rows; ++i)
    for (int j = 0; j < cols; ++j) dst[j * ld_dst + i] = src[i * ld_src + j];
}

}  // namespace flowgrad::small_gemm
