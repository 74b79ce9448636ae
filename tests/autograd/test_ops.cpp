// Every op, checked against central differences in float64.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "autograd/autograd.hpp"
#include "autograd/gradcheck.hpp"

using namespace flowgrad;
using Arr = xt::xarray<double>;
using In = std::vector<Tensor<double>>;

static Tensor<double> randn(const Shape& shape, unsigned seed, double offset = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n;
  Arr a = Arr::from_shape(shape);
  for (auto& v : a) v = n(rng) + offset;
  return Tensor<double>(a);
}

TEST_CASE("binary ops with broadcasting") {
  auto a = randn({2, 3, 4}, 1), b = randn({3, 1}, 2), c = randn({4}, 3, 3.0);
  CHECK(gradcheck([](const In& t) { return t[0] + t[1]; }, {a, b}));
  CHECK(gradcheck([](const In& t) { return t[0] - t[1]; }, {a, b}));
  CHECK(gradcheck([](const In& t) { return t[0] * t[1]; }, {a, b}));
  CHECK(gradcheck([](const In& t) { return t[0] / t[1]; }, {a, c}));
  CHECK(gradcheck([](const In& t) { return t[1] / t[0]; }, {c, a}));
}

// float's linear and its gradients run on small_gemm (y^T = W x^T, dx^T = W^T g^T,
// dW = g^T x, split over the threads when large), double's on BLAS: the float result and
// gradients equal the float64 ones to float32 rounding, |error| / (1 + |value|) below 1e-7
// (about float32's epsilon) times the length of the longest sum, on 1 and 2 threads, with
// and without bias.
TEST_CASE("linear in float32 equals float64, on 1 and 2 threads") {
  const int saved = num_threads();
  struct Dims { std::size_t n, in, out; };
  unsigned seed = 40;
  for (Dims d : {Dims{1, 1, 1}, Dims{3, 5, 7}, Dims{9, 33, 17}, Dims{64, 300, 70}, Dims{13, 1000, 257}})
    for (int threads : {1, 2})
      for (bool with_bias : {false, true}) {
        CAPTURE(d.n);
        CAPTURE(d.in);
        CAPTURE(d.out);
        CAPTURE(threads);
        CAPTURE(with_bias);
        set_num_threads(threads);
        auto x = randn({d.n, d.in}, ++seed), w = randn({d.out, d.in}, ++seed),
             b = randn({d.out}, ++seed), g = randn({d.n, d.out}, ++seed);
        auto run = [&](auto cast) {
          auto xc = cast(x), wc = cast(w), bc = with_bias ? cast(b) : decltype(cast(b))();
          for (auto* t : {&xc, &wc, &bc})
            if (t->defined()) t->set_requires_grad(true);
          auto y = linear(xc, wc, bc);
          sum(mul(y, cast(g).value())).backward();
          xt::xarray<double> db = with_bias ? xt::xarray<double>(bc.grad()) : xt::zeros<double>({d.out});
          return std::vector<xt::xarray<double>>{y.value(), xc.grad(), wc.grad(), db};
        };
        const auto f64 = run([](const Tensor<double>& t) { return Tensor<double>(Arr(t.value())); });
        const auto f32 = run([](const Tensor<double>& t) { return Tensor<float>(xt::xarray<float>(t.value())); });
        const double tol = 1e-7 * double(10 + std::max({d.n, d.in, d.out}));
        for (std::size_t i = 0; i < f64.size(); ++i) {
          CAPTURE(i);
          CHECK(xt::amax(xt::abs(f32[i] - f64[i]) / (1.0 + xt::abs(f64[i])))() < tol);
        }
      }
  set_num_threads(saved);
}

TEST_CASE("a reused input: x*x and x/x") {
  auto x = randn({3, 2}, 4, 2.0);
  CHECK(gradcheck([](const In& t) { return t[0] * t[0]; }, {x}));
  CHECK(gradcheck([](const In& t) { return t[0] * t[0] / t[0] + t[0]; }, {x}));
}

TEST_CASE("scalar variants and constant mask") {
  auto x = randn({2, 5}, 5, 2.0);
  Arr mask = {1.0, 0.0, 1.0, 0.0, 1.0};
  CHECK(gradcheck([](const In& t) { return 2.0 * t[0] + 1.0; }, {x}));
  CHECK(gradcheck([](const In& t) { return 3.0 - t[0] / 2.0; }, {x}));
  CHECK(gradcheck([](const In& t) { return 1.5 / t[0]; }, {x}));
  CHECK(gradcheck([&](const In& t) { return mul(t[0], mask); }, {x}));
}

TEST_CASE("unary ops") {
  auto x = randn({2, 3}, 6);
  auto pos = randn({2, 3}, 7, 3.0);
  CHECK(gradcheck([](const In& t) { return -t[0]; }, {x}));
  CHECK(gradcheck([](const In& t) { return exp(t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return log(t[0]); }, {pos}));
  CHECK(gradcheck([](const In& t) { return sqrt(t[0]); }, {pos}));
  CHECK(gradcheck([](const In& t) { return pow(t[0], 3.0); }, {x}));
  CHECK(gradcheck([](const In& t) { return pow(t[0], -0.5); }, {pos}));
  CHECK(gradcheck([](const In& t) { return abs(t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return tanh(t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return sigmoid(t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return softplus(t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return log_sigmoid(t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return relu(t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return clamp(t[0], -0.5, 0.5); }, {x}));
}

TEST_CASE("softplus and log_sigmoid are stable for large inputs") {
  Tensor<double> x(Arr{-800.0, -30.0, 0.0, 30.0, 800.0});
  auto sp = softplus(x).value();
  auto ls = log_sigmoid(x).value();
  CHECK(sp(0) == 0.0);
  CHECK(sp(4) == 800.0);
  CHECK(ls(0) == -800.0);
  CHECK(ls(4) == 0.0);
  CHECK(sp(2) == doctest::Approx(std::log(2.0)));
  Tensor<float> xf(xt::xarray<float>{-100.f, 100.f});
  CHECK(std::isfinite(softplus(xf).value()(1)));
  CHECK(std::isfinite(log_sigmoid(xf).value()(0)));
}

TEST_CASE("reductions") {
  auto x = randn({2, 3, 4}, 8);
  CHECK(gradcheck([](const In& t) { return sum(t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return sum(t[0], {1}); }, {x}));
  CHECK(gradcheck([](const In& t) { return sum(t[0], {0, 2}, true); }, {x}));
  CHECK(gradcheck([](const In& t) { return mean(t[0], {2}); }, {x}));
  CHECK(gradcheck([](const In& t) { return max(t[0], {1}); }, {x}));
  CHECK(gradcheck([](const In& t) { return logsumexp(t[0], {2}, true); }, {x}));
  CHECK(sum(x, {1}).shape() == Shape{2, 4});
  CHECK(mean(x, {0, 2}, true).shape() == Shape{1, 3, 1});
}

TEST_CASE("matmul, batched matmul and linear") {
  auto a = randn({3, 4}, 9), b = randn({4, 2}, 10);
  auto ba = randn({2, 3, 4}, 11), bb = randn({2, 4, 5}, 12);
  auto w = randn({5, 4}, 13), bias = randn({5}, 14);
  CHECK(gradcheck([](const In& t) { return matmul(t[0], t[1]); }, {a, b}));
  CHECK(gradcheck([](const In& t) { return matmul(t[0], t[1]); }, {ba, bb}));
  CHECK(gradcheck([](const In& t) { return matmul(t[0], t[1]); }, {ba, b}));
  CHECK(gradcheck([](const In& t) { return linear(t[0], t[1], t[2]); }, {a, w, bias}));
  CHECK(gradcheck([](const In& t) { return linear(t[0], t[1]); }, {a, w}));
  // the value itself, against a hand computation
  Arr m = matmul(a, b).value();
  CHECK(m(1, 1) == doctest::Approx(a.value()(1, 0) * b.value()(0, 1) + a.value()(1, 1) * b.value()(1, 1) +
                                    a.value()(1, 2) * b.value()(2, 1) + a.value()(1, 3) * b.value()(3, 1)));
}

TEST_CASE("shape ops, also on non-contiguous inputs") {
  auto x = randn({2, 3, 4}, 15);
  CHECK(gradcheck([](const In& t) { return reshape(t[0], {6, 4}); }, {x}));
  CHECK(gradcheck([](const In& t) { return flatten(t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return permute(t[0], {2, 0, 1}); }, {x}));
  CHECK(gradcheck([](const In& t) { return transpose(t[0], 0, 2); }, {x}));
  CHECK(gradcheck([](const In& t) { return slice(t[0], 2, 0, 4, 2); }, {x}));  // x[:, :, 0::2]
  CHECK(gradcheck([](const In& t) { return slice(t[0], 1, 1, 99); }, {x}));
  // slices of permutes feeding elementwise ops and matmul
  CHECK(gradcheck([](const In& t) { return exp(slice(permute(t[0], {2, 1, 0}), 0, 1, 4, 2)); }, {x}));
  CHECK(gradcheck([](const In& t) { return matmul(transpose(slice(t[0], 2, 1, 4, 1), 1, 2), t[0]); }, {x}));
  CHECK(gradcheck([](const In& t) { return concat<double>({t[0], t[0] * 2.0, slice(t[0], 1, 0, 1)}, 1); }, {x}));
  CHECK(gradcheck([](const In& t) { return stack<double>({t[0], exp(t[0])}, 3); }, {x}));
  CHECK(gradcheck([](const In& t) { return chunk(t[0], 2, 2)[1] * chunk(t[0], 2, 2)[0]; }, {x}));
  CHECK(gradcheck([](const In& t) { return split(t[0], {1, 2}, 1)[1]; }, {x}));
}

TEST_CASE("slicing with a step selects like Python") {
  Tensor<double> x(Arr{{0, 1, 2, 3, 4}, {5, 6, 7, 8, 9}});
  CHECK(slice(x, 1, 0, 5, 2).value() == Arr{{0, 2, 4}, {5, 7, 9}});
  CHECK(slice(x, 1, 1, 5, 2).value() == Arr{{1, 3}, {6, 8}});
  auto parts = chunk(x, 2, 0);
  CHECK(parts[1].value() == Arr{{5, 6, 7, 8, 9}});
  CHECK(stack<double>({x, x}, 2).shape() == Shape{2, 5, 2});
}

TEST_CASE("every op also runs in float32") {
  Tensor<float> a(xt::xarray<float>{{1.f, 2.f}, {3.f, 4.f}}, true);
  auto y = sum(linear(tanh(a), a) * sigmoid(a));
  y.backward();
  CHECK(a.grad().shape()[0] == 2);
  CHECK(std::isfinite(y.item()));
}

TEST_CASE("gradcheck catches a wrong backward") {
  auto x = randn({4}, 16);
  auto wrong = [](const In& t) {
    const auto& a = t[0];
    return record<double>("wrong_square", a.value() * a.value(), {a},
                          [a](const auto& g, const auto&) { a.accumulate_grad(g * a.value()); });
  };
  auto r = gradcheck(wrong, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.worst.find("input 0") != std::string::npos);
}
