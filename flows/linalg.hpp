// Small dense linear algebra for flows, always in float64: LU with partial pivoting,
// log|det|, inverse, random orthogonal matrices, and the two ops built on them. LAPACK
// (OpenBLAS's, through xtensor-blas) does the work inside linalg.cpp; this header includes
// neither, so users need not have xtensor-blas.
#pragma once

#include <cstddef>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace flowgrad::flows {

// P A = L U with unit-diagonal L below the diagonal of `lu` and U on and above it;
// perm[i] is the row of A that ended up in row i.
struct LUFactors {
  xt::xarray<double> lu;
  std::vector<std::size_t> perm;
  int sign = 1;           // sign of the permutation
  bool singular = false;  // a zero pivot was met
};

LUFactors lu_factor(const xt::xarray<double>& a);

struct SignLogDet {
  double sign;    // +1, -1, or 0 when singular
  double logabs;  // log|det A|, -inf when singular
};
SignLogDet slogdet(const xt::xarray<double>& a);

// A^{-1}; throws std::domain_error when A is singular.
xt::xarray<double> invert(const xt::xarray<double>& a);

// A random n x n orthogonal matrix, Haar-distributed: Q of a Gaussian matrix's QR, its
// columns' signs chosen so that diag(R) > 0.
xt::xarray<double> random_orthogonal(std::size_t n, Generator& g = default_generator());

// The permutation matrix P with P A = perm-rows of A, i.e. A = P^T L U.
xt::xarray<double> permutation_matrix(const std::vector<std::size_t>& perm);

// Ops on the tape (square matrices; computed in float64 for T = float too):
// log|det W| as a scalar of shape (), gradient g * W^{-T}.
template <class T> Tensor<T> logabsdet(const Tensor<T>& w);
// W^{-1}, gradient -W^{-T} G W^{-T}.
template <class T> Tensor<T> matrix_inverse(const Tensor<T>& w);

}  // namespace flowgrad::flows
