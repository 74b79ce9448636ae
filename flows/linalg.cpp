#include "flows/linalg.hpp"

#include <numeric>
#include <stdexcept>
#include <utility>

#include "autograd/blas.hpp"
#include "autograd/blas_lapack.hpp"
#include "autograd/instantiate.hpp"

namespace flowgrad::flows {

namespace {
std::size_t square_size(const char* op, const Shape& s) {
  if (s.size() != 2 || s[0] != s[1])
    throw ShapeError(std::string(op) + ": needs a square matrix, got shape " + shape_str(s));
  return s[0];
}
xt::xarray<double> to_double(const xt::xarray<float>& a) { return xt::cast<double>(a); }
const xt::xarray<double>& to_double(const xt::xarray<double>& a) { return a; }
using ColumnMajor = xt::xtensor<double, 2, xt::layout_type::column_major>;
}  // namespace

LUFactors lu_factor(const xt::xarray<double>& a) {
  const std::size_t n = square_size("lu_factor", to_shape(a.shape()));
  ColumnMajor lu = a;  // LAPACK factors in place, column-major
  std::vector<xt::blas_index_t> pivots(n);
  xt::lapack::getrf(lu, pivots);  // its info > 0 only reports a zero U(i,i), checked below
  LUFactors f;
  f.lu = lu;
  f.perm.resize(n);
  std::iota(f.perm.begin(), f.perm.end(), std::size_t(0));
  // LAPACK's pivots are 1-based swaps applied in order: row i was swapped with row pivots[i]-1.
  for (std::size_t i = 0; i < n; ++i) {
    const auto other = static_cast<std::size_t>(pivots[i] - 1);
    if (other == i) continue;
    std::swap(f.perm[i], f.perm[other]);
    f.sign = -f.sign;
  }
  for (std::size_t i = 0; i < n; ++i) f.singular = f.singular || f.lu(i, i) == 0.0;
  return f;
}

SignLogDet slogdet(const xt::xarray<double>& a) {
  square_size("slogdet", to_shape(a.shape()));
  const auto [sign, logabs] = xt::linalg::slogdet(a);  // (0, -inf) when singular
  return {sign, logabs};
}

xt::xarray<double> invert(const xt::xarray<double>& a) {
  const std::size_t n = square_size("invert", to_shape(a.shape()));
  if (n == 0) return a;  // LAPACK's getri rejects n = 0
  try {
    return xt::linalg::inv(a);
  } catch (const std::runtime_error&) {  // xtensor-blas's only error here: a zero pivot
    throw std::domain_error("invert: matrix of shape " + shape_str(to_shape(a.shape())) + " is singular");
  }
}

xt::xarray<double> random_orthogonal(std::size_t n, Generator& g) {
  const xt::xarray<double> gaussian = normal<double>({n, n}, 0.0, 1.0, g);
  const auto [q, r] = xt::linalg::qr(gaussian);
  // QR fixes Q only up to the signs of its columns; making diag(R) positive makes Q
  // Haar-distributed, as torch.nn.init.orthogonal_ does.
  const xt::xarray<double> signs = xt::where(xt::diagonal(r) < 0.0, -1.0, 1.0);
  return q * signs;  // column j times signs(j)
}

xt::xarray<double> permutation_matrix(const std::vector<std::size_t>& perm) {
  const std::size_t n = perm.size();
  xt::xarray<double> p = xt::zeros<double>({n, n});
  for (std::size_t i = 0; i < n; ++i) p(i, perm[i]) = 1.0;
  return p;
}

template <class T>
Tensor<T> logabsdet(const Tensor<T>& w) {
  square_size("logabsdet", w.shape());
  const auto& a = to_double(w.value());
  const auto sl = slogdet(a);
  if (sl.sign == 0)
    throw std::domain_error("logabsdet: matrix of shape " + shape_str(w.shape()) + " is singular");
  xt::xarray<T> y = xt::xarray<T>::from_shape({});
  y() = T(sl.logabs);
  xt::xarray<T> inv_t = xt::cast<T>(xt::transpose(invert(a)));
  return record<T>("logabsdet", std::move(y), {w}, [w, inv_t](const auto& g, const auto&) {
    w.accumulate_grad(inv_t * g());
  });
}

template <class T>
Tensor<T> matrix_inverse(const Tensor<T>& w) {
  const std::size_t n = square_size("matrix_inverse", w.shape());
  xt::xarray<double> inv = invert(to_double(w.value()));
  xt::xarray<T> y = xt::cast<T>(inv);
  return record<T>("matrix_inverse", y, {w}, [w, y, n](const auto& g, const auto&) {
    // dW = -Y^T G Y^T with Y = W^{-1}: two GEMMs.
    const int m = int(n);
    xt::xarray<T> ytg = xt::xarray<T>::from_shape({n, n});
    blas::gemm<T>(true, false, m, m, m, T(1), y.data(), m, g.data(), m, T(0), ytg.data(), m);
    xt::xarray<T> gw = xt::xarray<T>::from_shape({n, n});
    blas::gemm<T>(false, true, m, m, m, T(-1), ytg.data(), m, y.data(), m, T(0), gw.data(), m);
    w.accumulate_grad(std::move(gw));
  });
}

#define FLOWGRAD_FLOWS_LINALG(T)                       \
  template Tensor<T> logabsdet(const Tensor<T>&);      \
  template Tensor<T> matrix_inverse(const Tensor<T>&);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_FLOWS_LINALG)

}  // namespace flowgrad::flows
