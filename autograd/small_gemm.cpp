#include "autograd/small_gemm.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/parallel.hpp"

namespace flowgrad::small_gemm {

#if defined(__x86_64__)
void multiply_avx512(int m, int n, int k, const float* a, long a_row, long a_col, const float* b,
                     int ldb, float* c, int ldc, bool accumulate);
void multiply_avx2(int m, int n, int k, const float* a, long a_row, long a_col, const float* b,
                   int ldb, float* c, int ldc, bool accumulate);
void transpose_avx2(int rows, int cols, const float* src, long ld_src, float* dst, long ld_dst);
#endif

namespace {
enum class Isa { avx512, avx2, blas };
bool supported(Isa isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (isa == Isa::avx512) return __builtin_cpu_supports("avx512f");
  if (isa == Isa::avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return isa == Isa::blas;
}
bool parse(const char* name, Isa& isa) {
  for (Isa i : {Isa::avx512, Isa::avx2, Isa::blas})
    if (std::strcmp(name, i == Isa::avx512 ? "avx512" : i == Isa::avx2 ? "avx2" : "blas") == 0) {
      isa = i;
      return true;
    }
  return false;
}
Isa detect() {
  Isa chosen;
  const char* env = std::getenv("FLOWGRAD_SMALL_GEMM");
  if (env && parse(env, chosen) && supported(chosen)) return chosen;
  return supported(Isa::avx512) ? Isa::avx512 : supported(Isa::avx2) ? Isa::avx2 : Isa::blas;
}
Isa kIsa = detect();
}  // namespace

// BLAS takes A row-major with a unit column stride: A itself, or A^T stored (unit row
// stride). A stride that is never used (one row, or k = 1) is given as the smallest legal.
template <class T>
void on_blas(int m, int n, int k, const T* a, long a_row, long a_col, const T* b, int ldb, T* c,
             int ldc, bool accumulate) {
  const bool transposed = a_col != 1 && k > 1;
  const long lda = transposed ? a_col : m > 1 ? a_row : std::max(k, 1);
  blas::gemm<T>(transposed, false, m, n, k, T(1), a, int(std::max(lda, 1L)), b, std::max(ldb, 1), T(accumulate), c, ldc);
}

const char* isa() { return kIsa == Isa::avx512 ? "avx512" : kIsa == Isa::avx2 ? "avx2" : "blas"; }

bool set_isa(const char* name) {
  Isa chosen;
  if (!parse(name, chosen) || !supported(chosen)) return false;
  kIsa = chosen;
  return true;
}

void multiply(int m, int n, int k, const float* a, long a_row, long a_col, const float* b, int ldb,
              float* c, int ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
#if defined(__x86_64__)
  if (kIsa == Isa::avx512) return multiply_avx512(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
  if (kIsa == Isa::avx2) return multiply_avx2(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
#endif
  on_blas(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
}

void multiply(int m, int n, int k, const double* a, long a_row, long a_col, const double* b,
              int ldb, double* c, int ldc, bool accumulate) {
  if (m > 0 && n > 0) on_blas(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
}

void multiply_parallel(int m, int n, int k, const float* a, long a_row, long a_col, const float* b,
                       int ldb, float* c, int ldc, bool accumulate) {
  const int threads = num_threads();
  if (threads < 2 || in_parallel_region() || double(m) * n * k < 1e6)
    return multiply(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
  const bool by_rows = m >= n;
  const int extent = by_rows ? m : n, unit = by_rows ? 8 : 32;  // the kernel's block sides
  const int units = (extent + unit - 1) / unit, pieces = std::min(units, 4 * threads);
  parallel_for(0, std::size_t(pieces), [&](std::size_t p) {
    const int lo = unit * int(p * units / pieces);
    const int hi = std::min(extent, unit * int((p + 1) * units / pieces));
    if (by_rows)
      multiply(hi - lo, n, k, a + lo * a_row, a_row, a_col, b, ldb, c + long(lo) * ldc, ldc, accumulate);
    else
      multiply(m, hi - lo, k, a, a_row, a_col, b + lo, ldb, c + lo, ldc, accumulate);
  });
}

void multiply_parallel(int m, int n, int k, const double* a, long a_row, long a_col,
                       const double* b, int ldb, double* c, int ldc, bool accumulate) {
  multiply(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
}

template <class T>
void transpose_loop(int rows, int cols, const T* src, long ld_src, T* dst, long ld_dst) {
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) dst[j * ld_dst + i] = src[i * ld_src + j];
}

void transpose(int rows, int cols, const float* src, long ld_src, float* dst, long ld_dst) {
#if defined(__x86_64__)
  if (kIsa != Isa::blas) return transpose_avx2(rows, cols, src, ld_src, dst, ld_dst);
#endif
  transpose_loop(rows, cols, src, ld_src, dst, ld_dst);
}

void transpose(int rows, int cols, const double* src, long ld_src, double* dst, long ld_dst) {
  transpose_loop(rows, cols, src, ld_src, dst, ld_dst);
}

void multiply_add_bt(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
                     int ldc) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  thread_local std::vector<float> bt;
  bt.resize(std::size_t(k) * n);
  transpose(n, k, b, ldb, bt.data(), n);
  multiply(m, n, k, a, lda, 1, bt.data(), n, c, ldc, true);
}

void multiply_add_bt(int m, int n, int k, const double* a, int lda, const double* b, int ldb,
                     double* c, int ldc) {
  if (m > 0 && n > 0 && k > 0)
    blas::gemm<double>(false, true, m, n, k, 1.0, a, lda, b, ldb, 1.0, c, ldc);
}

}  // namespace flowgrad::small_gemm
