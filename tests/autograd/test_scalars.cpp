// Scalars of any arithmetic type mix with Tensor<float> and Tensor<double>, as in PyTorch.
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "autograd/gradcheck.hpp"

using namespace flowgrad;

TEST_CASE_TEMPLATE("a double or int scalar mixes with a tensor of either type", T, float, double) {
  const Tensor<T> x(xt::xarray<T>{T(0.25), T(0.5), T(2)});
  // Each line is one operator or op with a double or int scalar, against the same with T.
  CHECK((0.5 * x).value() == (T(0.5) * x).value());
  CHECK((x * 2).value() == (x * T(2)).value());
  CHECK((x / 4.0).value() == (x / T(4)).value());
  CHECK((1 - x).value() == (T(1) - x).value());
  CHECK((x + 1.5).value() == (x + T(1.5)).value());
  CHECK((x - 1).value() == (x - T(1)).value());
  CHECK((2 / x).value() == (T(2) / x).value());
  CHECK(pow(x, 2).value() == pow(x, T(2)).value());
  CHECK(clamp(x, 0, 1.0).value() == clamp(x, T(0), T(1)).value());
  CHECK(mul(x, 3).value() == mul(x, T(3)).value());
  const xt::xarray<T> want{T(0.0625), T(0.25), T(4)};
  CHECK(pow(x, 2.0).value() == want);
}

TEST_CASE("mixed scalars keep their gradients") {
  const Tensor<double> x(xt::xarray<double>{0.3, -1.2, 2.5});
  using In = std::vector<Tensor<double>>;
  CHECK(gradcheck([](const In& t) { return 0.5 * pow(t[0], 2) + 3 * t[0] - 1; }, {x}));
  CHECK(gradcheck([](const In& t) { return 2 / (t[0] * t[0] + 1) - t[0] / 4; }, {x}));
}
