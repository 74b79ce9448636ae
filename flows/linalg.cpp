#include "flows/linalg.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

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
}  // namespace

LUFactors lu_factor(const xt::xarray<double>& a) {
  const std::size_t n = square_size("lu_factor", to_shape(a.shape()));
  LUFactors f;
  f.lu = a;
  f.perm.resize(n);
  for (std::size_t i = 0; i < n; ++i) f.perm[i] = i;
  auto& m = f.lu;
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t pivot = k;  // the largest |entry| in column k at or below the diagonal
    for (std::size_t i = k + 1; i < n; ++i)
      if (std::abs(m(i, k)) > std::abs(m(pivot, k))) pivot = i;
    if (pivot != k) {
      for (std::size_t j = 0; j < n; ++j) std::swap(m(k, j), m(pivot, j));
      std::swap(f.perm[k], f.perm[pivot]);
      f.sign = -f.sign;
    }
    if (m(k, k) == 0.0) {
      f.singular = true;
      continue;
    }
    for (std::size_t i = k + 1; i < n; ++i) {
      const double l = m(i, k) /= m(k, k);
      for (std::size_t j = k + 1; j < n; ++j) m(i, j) -= l * m(k, j);
    }
  }
  return f;
}

SignLogDet slogdet(const xt::xarray<double>& a) {
  const auto f = lu_factor(a);
  if (f.singular) return {0.0, -std::numeric_limits<double>::infinity()};
  double sign = f.sign, logabs = 0;
  for (std::size_t i = 0; i < f.perm.size(); ++i) {
    const double u = f.lu(i, i);
    if (u < 0) sign = -sign;
    logabs += std::log(std::abs(u));
  }
  return {sign, logabs};
}

xt::xarray<double> invert(const xt::xarray<double>& a) {
  const auto f = lu_factor(a);
  const std::size_t n = f.perm.size();
  if (f.singular)
    throw std::domain_error("invert: matrix of shape " + shape_str(to_shape(a.shape())) + " is singular");
  xt::xarray<double> inv = xt::zeros<double>({n, n});
  // Solve L U x = P e_j for every column j.
  std::vector<double> x(n);
  for (std::size_t j = 0; j < n; ++j) {
    for (std::size_t i = 0; i < n; ++i) {
      double v = f.perm[i] == j ? 1.0 : 0.0;
      for (std::size_t k = 0; k < i; ++k) v -= f.lu(i, k) * x[k];
      x[i] = v;
    }
    for (std::size_t i = n; i-- > 0;) {
      double v = x[i];
      for (std::size_t k = i + 1; k < n; ++k) v -= f.lu(i, k) * x[k];
      x[i] = v / f.lu(i, i);
    }
    for (std::size_t i = 0; i < n; ++i) inv(i, j) = x[i];
  }
  return inv;
}

xt::xarray<double> random_orthogonal(std::size_t n, Generator& g) {
  xt::xarray<double> q = normal<double>({n, n}, 0.0, 1.0, g);
  for (std::size_t j = 0; j < n; ++j) {
    for (int pass = 0; pass < 2; ++pass)
      for (std::size_t k = 0; k < j; ++k) {
        double dot = 0;
        for (std::size_t i = 0; i < n; ++i) dot += q(i, k) * q(i, j);
        for (std::size_t i = 0; i < n; ++i) q(i, j) -= dot * q(i, k);
      }
    double norm = 0;
    for (std::size_t i = 0; i < n; ++i) norm += q(i, j) * q(i, j);
    norm = std::sqrt(norm);
    for (std::size_t i = 0; i < n; ++i) q(i, j) /= norm;
  }
  return q;
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
    // dW = -Y^T G Y^T with Y = W^{-1}: two n^3 products.
    xt::xarray<T> gy = xt::zeros<T>({n, n});  // G Y^T
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t b = 0; b < n; ++b)
        for (std::size_t j = 0; j < n; ++j) gy(a, j) += g(a, b) * y(j, b);
    xt::xarray<T> gw = xt::zeros<T>({n, n});
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) gw(i, j) -= y(a, i) * gy(a, j);
    w.accumulate_grad(std::move(gw));
  });
}

#define FLOWGRAD_FLOWS_LINALG(T)                       \
  template Tensor<T> logabsdet(const Tensor<T>&);      \
  template Tensor<T> matrix_inverse(const Tensor<T>&);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_FLOWS_LINALG)

}  // namespace flowgrad::flows
