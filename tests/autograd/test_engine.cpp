// The tape: accumulation, retain/free, NoGrad, deep graphs, error messages.
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"

using namespace flowgrad;
using Arr = xt::xarray<double>;

TEST_CASE("gradients accumulate across two backwards") {
  Tensor<double> x(Arr{1.0, 2.0, 3.0}, true);
  sum(x * x).backward();
  sum(x * x).backward();
  CHECK(x.grad() == Arr{4.0, 8.0, 12.0});
  x.zero_grad();
  CHECK_FALSE(x.has_grad());
}

TEST_CASE("a freed graph cannot be backpropagated twice; a retained one can") {
  Tensor<double> x(Arr{1.0, 2.0}, true);
  auto y = sum(exp(x));
  y.backward();
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("already freed"), std::logic_error);

  auto z = sum(exp(x));
  x.zero_grad();
  z.backward(/*retain_graph=*/true);
  z.backward();
  CHECK(xt::allclose(x.grad(), 2.0 * xt::exp(x.value())));
}

TEST_CASE("two losses sharing a subgraph") {
  Tensor<double> x(Arr{0.5, -1.0}, true);
  auto h = tanh(x);
  auto a = sum(h * 2.0);
  auto b = sum(h * h);
  a.backward(true);
  b.backward();
  Arr t = xt::tanh(x.value());
  CHECK(xt::allclose(x.grad(), (2.0 + 2.0 * t) * (1.0 - t * t)));
}

TEST_CASE("NoGrad records nothing") {
  Tensor<double> x(Arr{1.0, 2.0}, true);
  const auto before = live_nodes();
  {
    NoGrad guard;
    auto y = sum(exp(x) * x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    CHECK(live_nodes() == before);
  }
  CHECK(grad_enabled());
  auto y = exp(x);
  CHECK(y.requires_grad());
  CHECK(live_nodes() == before + 1);
}

TEST_CASE("a 20,000-op chain backpropagates and is freed without recursion") {
  const auto before = live_nodes();
  Tensor<double> x(Arr{1.0}, true);
  {
    auto y = x;
    for (int i = 0; i < 20000; ++i) y = y * 1.0001 + 0.0;
    sum(y).backward();
    CHECK(x.grad()(0) == doctest::Approx(std::pow(1.0001, 20000)).epsilon(1e-9));
  }
  CHECK(live_nodes() == before);
  {  // dropped without backward: the destructor must not recurse either
    auto y = x;
    for (int i = 0; i < 100000; ++i) y = y + 1.0;
    CHECK(live_nodes() == before + 100000);
  }
  CHECK(live_nodes() == before);
}

TEST_CASE("memory does not grow over 1000 steps") {
  Tensor<double> w(Arr{{0.1, 0.2}, {0.3, 0.4}}, true);
  Tensor<double> x(Arr{{1.0, 2.0}});
  const auto before = live_nodes();
  for (int step = 0; step < 1000; ++step) {
    auto loss = mean(tanh(matmul(x, w)));
    loss.backward();
    w.value() -= 0.01 * w.grad();
    w.zero_grad();
  }
  CHECK(live_nodes() == before);
}

TEST_CASE("shape errors name the op and both shapes") {
  Tensor<double> a(Arr::from_shape({2, 3})), b(Arr::from_shape({4, 3}));
  CHECK_THROWS_WITH_AS(add(a, b), "add: shapes (2, 3) and (4, 3) do not broadcast", ShapeError);
  CHECK_THROWS_WITH_AS(matmul(a, b), "matmul: shapes (2, 3) and (4, 3) cannot be multiplied",
                       ShapeError);
  CHECK_THROWS_WITH_AS(reshape(a, {5}), "reshape: cannot reshape (2, 3) to (5,)", ShapeError);
  CHECK_THROWS_AS(concat<double>({a, Tensor<double>(Arr::from_shape({2, 2}))}, 0), ShapeError);
}

TEST_CASE("backward needs a scalar") {
  Tensor<double> x(Arr{1.0, 2.0}, true);
  CHECK_THROWS_AS(exp(x).backward(), ShapeError);
}
