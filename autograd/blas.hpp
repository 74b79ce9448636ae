// The one door to BLAS: everything else calls gemm<T>. <cblas.h> stays out of the public
// headers; the .cpp files get it through autograd/blas_lapack.hpp (which also orders it
// before xtensor-blas, whose bundled cblas declarations clash with OpenBLAS's).
#pragma once

namespace flowgrad::blas {

// C = alpha * op(A) * op(B) + beta * C, row-major; op(X) = X or X^T.
// op(A) is m x k, op(B) is k x n, C is m x n; ld* are row strides.
template <class T>
void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda,
          const T* b, int ldb, T beta, T* c, int ldc);

// OpenBLAS's own thread count (it is read once at load time from OPENBLAS_NUM_THREADS;
// this changes it at run time).
void set_num_threads(int n);
int num_threads();
// The kernel family OpenBLAS chose for this CPU, e.g. "SkylakeX" or "Prescott".
const char* core_name();

}  // namespace flowgrad::blas
