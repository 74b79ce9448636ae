// The body of small_gemm::multiply, written once against a vector type V and compiled
// once per instruction set (small_gemm_avx2.cpp, small_gemm_avx512.cpp, each with its own
// -m flags). Only <immintrin.h> may be included here and in those files: an inline
// function of a shared header compiled with -mavx512f could be the copy the linker keeps.
#pragma once

namespace flowgrad::small_gemm {
namespace {

// An MR x (NV vectors) block of C in registers, over the whole k: C's block is read and
// written once, B's rows stream through once per block of A's rows. `last` is the
// number of columns of the last vector that are inside C (the rest is masked off).
template <class V, int MR, int NV>
inline void block(int k, const float* a, long a_row, long a_col, const float* b, int ldb,
                  float* c, int ldc, int last, bool accumulate) {
  typename V::type sum[MR][NV];
  const typename V::mask tail = V::first(last);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) sum[i][j] = V::zero();
  for (int p = 0; p < k; ++p) {
    typename V::type row[NV];
    const float* bp = b + long(p) * ldb;
#pragma GCC unroll 16
    for (int j = 0; j < NV - 1; ++j) row[j] = V::load(bp + j * V::width);
    row[NV - 1] = V::load(bp + (NV - 1) * V::width, tail);
    const float* ap = a + p * a_col;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const typename V::type ai = V::broadcast(ap + i * a_row);
#pragma GCC unroll 16
      for (int j = 0; j < NV; ++j) sum[i][j] = V::fma(ai, row[j], sum[i][j]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* ci = c + long(i) * ldc;
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) {
      const bool full = j < NV - 1;
      typename V::type out = sum[i][j];
      if (accumulate) out = V::add(out, full ? V::load(ci + j * V::width) : V::load(ci + j * V::width, tail));
      if (full) V::store(ci + j * V::width, out);
      else V::store(ci + j * V::width, out, tail);
    }
  }
}

// Rows i0 .. m in blocks of MR, then the rest one smaller block (a switch, so every
// block size is a compile-time constant and its sums stay in registers).
template <class V, int MR, int NV>
inline void rows(int m, int k, const float* a, long a_row, long a_col, const float* b, int ldb,
                 float* c, int ldc, int last, bool accumulate) {
  int i = 0;
  for (; i + MR <= m; i += MR)
    block<V, MR, NV>(k, a + i * a_row, a_row, a_col, b, ldb, c + long(i) * ldc, ldc, last, accumulate);
  if (i == m) return;
  if constexpr (MR > 1) {
    const int left = m - i;
    const float* ai = a + i * a_row;
    float* ci = c + long(i) * ldc;
    switch (left) {
#define FLOWGRAD_SMALL_GEMM_REST(R) \
  case R: if constexpr (R < MR) block<V, R, NV>(k, ai, a_row, a_col, b, ldb, ci, ldc, last, accumulate); break;
      FLOWGRAD_SMALL_GEMM_REST(1) FLOWGRAD_SMALL_GEMM_REST(2) FLOWGRAD_SMALL_GEMM_REST(3)
      FLOWGRAD_SMALL_GEMM_REST(4) FLOWGRAD_SMALL_GEMM_REST(5) FLOWGRAD_SMALL_GEMM_REST(6)
      FLOWGRAD_SMALL_GEMM_REST(7) FLOWGRAD_SMALL_GEMM_REST(8) FLOWGRAD_SMALL_GEMM_REST(9)
      FLOWGRAD_SMALL_GEMM_REST(10) FLOWGRAD_SMALL_GEMM_REST(11)
#undef FLOWGRAD_SMALL_GEMM_REST
      default: break;
    }
  }
}

// The last panel, 1 to NV vectors wide: `vectors` picks its compile-time width.
template <class V, int MR, int NV>
void last_panel(int vectors, int m, int k, const float* a, long a_row, long a_col, const float* b,
                int ldb, float* c, int ldc, int last, bool accumulate) {
  if constexpr (NV > 1) {
    if (vectors < NV)
      return last_panel<V, MR, NV - 1>(vectors, m, k, a, a_row, a_col, b, ldb, c, ldc, last, accumulate);
  }
  rows<V, MR, NV>(m, k, a, a_row, a_col, b, ldb, c, ldc, last, accumulate);
}

// Columns in panels of NV vectors (a panel of B, k x NV * width, stays in L1 while every
// row block passes over it), then the last, narrower panel.
template <class V, int MR, int NV>
void multiply_with(int m, int n, int k, const float* a, long a_row, long a_col, const float* b,
                   int ldb, float* c, int ldc, bool accumulate) {
  constexpr int panel = NV * V::width;
  int j = 0;
  for (; j + panel <= n; j += panel)
    rows<V, MR, NV>(m, k, a, a_row, a_col, b + j, ldb, c + j, ldc, V::width, accumulate);
  const int left = n - j;
  if (left <= 0) return;
  const int vectors = (left + V::width - 1) / V::width, last = left - (vectors - 1) * V::width;
  last_panel<V, MR, NV>(vectors, m, k, a, a_row, a_col, b + j, ldb, c + j, ldc, last, accumulate);
}

}  // namespace
}  // namespace flowgrad::small_gemm
