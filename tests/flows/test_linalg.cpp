// The float64 LU behind every logdet check (LAPACK through xtensor-blas): slogdet, inverse,
// random orthogonal matrices, and the two tape ops.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/gradcheck.hpp"
#include "flow_checks.hpp"
#include "flows/linalg.hpp"

using namespace flowgrad;
using namespace flow_checks;
using In = std::vector<Tensor<double>>;

namespace {
// A B by plain loops, independent of the BLAS under test.
Arr product(const Arr& a, const Arr& b) {
  Arr c = xt::zeros<double>({a.shape()[0], b.shape()[1]});
  for (std::size_t i = 0; i < a.shape()[0]; ++i)
    for (std::size_t k = 0; k < a.shape()[1]; ++k)
      for (std::size_t j = 0; j < b.shape()[1]; ++j) c(i, j) += a(i, k) * b(k, j);
  return c;
}
double distance_to_identity(const Arr& a) {
  return max_abs_diff(a, Arr(xt::eye<double>(a.shape()[0])));
}
}  // namespace

TEST_CASE("slogdet of known matrices, with pivoting") {
  Arr a = {{0.0, 2.0}, {3.0, 4.0}};  // needs a row swap: det = -6
  auto s = flows::slogdet(a);
  CHECK(s.sign == -1.0);
  CHECK(s.logabs == doctest::Approx(std::log(6.0)));
  Arr tri = {{2.0, 7.0, -1.0}, {0.0, -3.0, 5.0}, {0.0, 0.0, 0.5}};  // det = -3
  s = flows::slogdet(tri);
  CHECK(s.sign == -1.0);
  CHECK(s.logabs == doctest::Approx(std::log(3.0)));
  Arr sing = {{1.0, 2.0}, {2.0, 4.0}};
  s = flows::slogdet(sing);
  CHECK(s.sign == 0.0);
  CHECK(std::isinf(s.logabs));
  CHECK_THROWS_AS(flows::invert(sing), std::domain_error);
  CHECK_THROWS_AS(flows::slogdet(Arr{{1.0, 2.0, 3.0}}), ShapeError);
}

TEST_CASE("slogdet under scaling and row swaps") {
  Arr a = randn({6, 6}, 1);
  auto s = flows::slogdet(a);
  Arr b = a * 2.0;  // det(2A) = 2^6 det(A)
  auto t = flows::slogdet(b);
  CHECK(t.sign == s.sign);
  CHECK(t.logabs == doctest::Approx(s.logabs + 6 * std::log(2.0)).epsilon(1e-12));
  // Swapping two rows flips the sign.
  Arr c = a;
  for (std::size_t j = 0; j < 6; ++j) std::swap(c(0, j), c(3, j));
  CHECK(flows::slogdet(c).sign == -s.sign);
}

TEST_CASE("LU factors reproduce the matrix; inverse; random orthogonal") {
  Arr a = randn({5, 5}, 2);
  auto f = flows::lu_factor(a);
  Arr l = xt::eye<double>(5), u = xt::zeros<double>({5, 5});
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 5; ++j) (j < i ? l(i, j) : u(i, j)) = f.lu(i, j);
  Arr lu = xt::zeros<double>({5, 5});
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 5; ++j)
      for (std::size_t k = 0; k < 5; ++k) lu(i, j) += l(i, k) * u(k, j);
  double err = 0;
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 5; ++j) err = std::max(err, std::abs(lu(i, j) - a(f.perm[i], j)));
  CHECK(err < 1e-12);

  Arr inv = flows::invert(a);
  double id_err = 0;
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 5; ++j) {
      double v = 0;
      for (std::size_t k = 0; k < 5; ++k) v += a(i, k) * inv(k, j);
      id_err = std::max(id_err, std::abs(v - (i == j ? 1.0 : 0.0)));
    }
  CHECK(id_err < 1e-12);

  Generator g(7);
  Arr q = flows::random_orthogonal(8, g);
  CHECK(std::abs(flows::slogdet(q).logabs) < 1e-12);
}

TEST_CASE("logabsdet and matrix_inverse: values and gradcheck") {
  Arr a = randn({4, 4}, 3) + xt::eye<double>(4) * 2.0;
  CHECK(flows::logabsdet(Tensor<double>(a)).item() == doctest::Approx(flows::slogdet(a).logabs));
  CHECK(gradcheck([](const In& t) { return flows::logabsdet(t[0]); }, {Tensor<double>(a)}));
  CHECK(gradcheck([](const In& t) { return flows::matrix_inverse(t[0]); }, {Tensor<double>(a)}));
  Arr neg = a;
  for (std::size_t j = 0; j < 4; ++j) neg(0, j) = -neg(0, j);  // negative determinant
  CHECK(gradcheck([](const In& t) { return flows::logabsdet(t[0]); }, {Tensor<double>(neg)}));
  CHECK_THROWS_AS(flows::logabsdet(Tensor<double>(Arr{{1.0, 1.0}, {1.0, 1.0}})), std::domain_error);
  // float input: computed in float64 inside.
  Tensor<float> af(xt::xarray<float>(xt::cast<float>(a)));
  CHECK(flows::logabsdet(af).item() == doctest::Approx(flows::slogdet(a).logabs).epsilon(1e-5));
}

TEST_CASE("LU follows LAPACK's row swaps: perm, sign and singular") {
  // A cyclic permutation: rows 0 <-> 2, then 1 <-> 2, so perm-rows(A) = I = L U.
  Arr a = {{0.0, 1.0, 0.0}, {0.0, 0.0, 1.0}, {1.0, 0.0, 0.0}};
  auto f = flows::lu_factor(a);
  CHECK(f.perm == std::vector<std::size_t>{2, 0, 1});
  CHECK(f.sign == 1);
  CHECK(!f.singular);
  CHECK(max_abs_diff(f.lu, xt::eye<double>(3)) == 0.0);
  CHECK(distance_to_identity(product(flows::permutation_matrix(f.perm), a)) == 0.0);
  f = flows::lu_factor(Arr{{0.0, 2.0}, {3.0, 4.0}});
  CHECK(f.perm == std::vector<std::size_t>{1, 0});
  CHECK(f.sign == -1);
  CHECK(flows::lu_factor(Arr{{1.0, 2.0}, {2.0, 4.0}}).singular);
  CHECK_THROWS_AS(flows::lu_factor(Arr{{1.0, 2.0}}), ShapeError);
  CHECK(flows::invert(Arr(xt::ones<double>({1, 1}) * 4.0))(0, 0) == 0.25);
}

TEST_CASE("float64 accuracy at 64 x 64: P A = L U, A^-1 A = I, Q^T Q = I") {
  const std::size_t n = 64;
  Arr a = randn({n, n}, 4);
  auto f = flows::lu_factor(a);
  Arr l = xt::eye<double>(n), u = xt::zeros<double>({n, n});
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) (j < i ? l(i, j) : u(i, j)) = f.lu(i, j);
  CHECK(max_abs_diff(product(flows::permutation_matrix(f.perm), a), product(l, u)) < 1e-12);
  // det(P) = sign, so the LU's log|det| is slogdet's.
  double logabs = 0;
  for (std::size_t i = 0; i < n; ++i) logabs += std::log(std::abs(u(i, i)));
  CHECK(flows::slogdet(a).logabs == doctest::Approx(logabs).epsilon(1e-12));

  const Arr inv = flows::invert(a);
  CHECK(distance_to_identity(product(inv, a)) < 1e-10);
  CHECK(distance_to_identity(product(a, inv)) < 1e-10);

  // Q is the QR of the Gaussian drawn from the same seed, with diag(R) = Q^T G > 0.
  Generator g(9), same(9);
  const Arr q = flows::random_orthogonal(n, g);
  const Arr gaussian = normal<double>({n, n}, 0.0, 1.0, same);
  CHECK(distance_to_identity(product(xt::transpose(q), q)) < 1e-12);
  const Arr r = product(xt::transpose(q), gaussian);
  double below_diagonal = 0, smallest_diagonal = INFINITY;
  for (std::size_t i = 0; i < n; ++i) {
    smallest_diagonal = std::min(smallest_diagonal, r(i, i));
    for (std::size_t j = 0; j < i; ++j) below_diagonal = std::max(below_diagonal, std::abs(r(i, j)));
  }
  CHECK(below_diagonal < 1e-12);
  CHECK(smallest_diagonal > 0);
}

TEST_CASE("matrix_inverse's gradient in float32 agrees with float64's") {
  const std::size_t n = 12;
  Arr a = randn({n, n}, 5) + xt::eye<double>(n) * 3.0;
  Arr weights = randn({n, n}, 6);  // d(sum(weights * W^-1)) / dW
  Tensor<double> wd(a, true);
  sum(flows::matrix_inverse(wd) * Tensor<double>(weights)).backward();
  Tensor<float> wf(xt::xarray<float>(xt::cast<float>(a)), true);
  sum(flows::matrix_inverse(wf) * Tensor<float>(xt::xarray<float>(xt::cast<float>(weights)))).backward();
  const double scale = xt::amax(xt::abs(wd.grad()))();
  CHECK(max_abs_diff(wf.grad(), wd.grad()) < 1e-5 * scale);
}
