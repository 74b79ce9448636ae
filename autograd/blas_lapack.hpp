// The one place that includes OpenBLAS's <cblas.h> and xtensor-blas; a .cpp that needs
// either includes this. Private: not installed, so users' code never sees either header.
//
// Why: xtensor-blas bundles a copy of netlib's cblas.h (xflens/cxxblas/drivers/cblas.h)
// whose enums and prototypes differ from OpenBLAS's, so the two fail to compile together in
// either order. OpenBLAS is what we link (its libopenblas also has the LAPACK routines
// xtensor-blas calls), so its header goes first and the bundled copy is skipped by defining
// that copy's include guard: xtensor-blas's templates then call OpenBLAS's declarations.
#pragma once

#include <cblas.h>

#ifdef CXXBLAS_DRIVERS_CBLAS_H
#error "xtensor-blas was included before autograd/blas_lapack.hpp: include only this header"
#endif
#define CXXBLAS_DRIVERS_CBLAS_H 1
#include <xtensor-blas/xlinalg.hpp>
