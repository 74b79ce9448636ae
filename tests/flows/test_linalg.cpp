// The float64 LU behind every logdet check: slogdet, inverse, and the two tape ops.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/gradcheck.hpp"
#include "flow_checks.hpp"
#include "flows/linalg.hpp"

using namespace flowgrad;
using namespace flow_checks;
using In = std::vector<Tensor<double>>;

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
