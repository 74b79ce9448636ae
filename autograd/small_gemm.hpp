// Our own float32 kernel for the small products of Winograd convolutions (64 x 64 x ~100):
// register-blocked, no packing, compiled for AVX2 and AVX-512 and picked for this CPU at
// run time, so its speed does not depend on which kernels OpenBLAS chose (a machine that
// sets OPENBLAS_CORETYPE=Haswell gets AVX2 products from OpenBLAS even on an AVX-512 CPU).
#pragma once

namespace flowgrad::small_gemm {

// C (m x n, row stride ldc) = A B, or C += A B when `accumulate`. A's element (i, p) is
// a[i * a_row + p * a_col] (so A^T is the same matrix with the strides swapped); B is
// row-major k x n with row stride ldb. One of A's strides is 1. float runs on our kernel
// (on BLAS on CPUs without AVX2 and FMA); double, for gradchecks, always on BLAS.
void multiply(int m, int n, int k, const float* a, long a_row, long a_col, const float* b, int ldb,
              float* c, int ldc, bool accumulate);
void multiply(int m, int n, int k, const double* a, long a_row, long a_col, const double* b,
              int ldb, double* c, int ldc, bool accumulate);

// multiply, with C's rows (or, when C is wider than tall, its columns) split over the
// threads of parallel_for; on the calling thread alone when nested or small. For the large
// products of Linear layers. double is multiply, on BLAS (which has its own threads).
void multiply_parallel(int m, int n, int k, const float* a, long a_row, long a_col, const float* b,
                       int ldb, float* c, int ldc, bool accumulate);
void multiply_parallel(int m, int n, int k, const double* a, long a_row, long a_col,
                       const double* b, int ldb, double* c, int ldc, bool accumulate);

// C (m x n) += A B^T, A (m x k) and B (n x k) row-major with row strides lda and ldb. For
// float, B is first transposed into a per-thread buffer (n k copies against the product's
// 2 m n k) so that multiply reads its rows; double goes to BLAS.
void multiply_add_bt(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
                     int ldc);
void multiply_add_bt(int m, int n, int k, const double* a, int lda, const double* b, int ldb,
                     double* c, int ldc);

// dst (cols x rows, row stride ld_dst) = the transpose of src (rows x cols, row stride
// ld_src), in 8 x 8 register blocks where the CPU has AVX2.
void transpose(int rows, int cols, const float* src, long ld_src, float* dst, long ld_dst);
void transpose(int rows, int cols, const double* src, long ld_src, double* dst, long ld_dst);

// The instruction set multiply uses: "avx512", "avx2" or "blas", the widest this CPU has
// unless FLOWGRAD_SMALL_GEMM (read at load time) or set_isa names another.
const char* isa();
// Use `name` from now on (for tests and comparisons); false, and no change, when this
// CPU lacks it or the name is unknown. Not thread-safe: call it between steps.
bool set_isa(const char* name);

}  // namespace flowgrad::small_gemm
