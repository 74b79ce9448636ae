// Base distributions and the multi-scale split.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>

#include "autograd/gradcheck.hpp"
#include <xtensor/xview.hpp>

#include "flow_checks.hpp"
#include "flows/distributions.hpp"
#include "flows/split.hpp"
#include "nn/zero_conv.hpp"

using namespace flowgrad;
using namespace flow_checks;
using In = std::vector<Tensor<double>>;

TEST_CASE("log_prob per example, by the formulas") {
  Arr z = randn({3, 2, 2}, 1);
  Arr lg = flows::StandardGaussian<double>().log_prob(Tensor<double>(z)).value();
  Arr ll = flows::StandardLogistic<double>().log_prob(Tensor<double>(z)).value();
  REQUIRE(lg.shape() == std::vector<std::size_t>{3});
  for (std::size_t b = 0; b < 3; ++b) {
    double g = 0, l = 0;
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t j = 0; j < 2; ++j) {
        const double v = z(b, i, j);
        g += -0.5 * (v * v + std::log(2 * M_PI));
        l += -v - 2 * std::log1p(std::exp(-v));  // log e^{-v} / (1 + e^{-v})^2
      }
    CHECK(lg(b) == doctest::Approx(g).epsilon(1e-13));
    CHECK(ll(b) == doctest::Approx(l).epsilon(1e-13));
  }
  Tensor<double> mean(randn({1, 2, 2}, 2)), logs(randn({1, 2, 2}, 3, 0.3));
  flows::DiagonalGaussian<double> d(mean, logs);
  Arr ld = d.log_prob(Tensor<double>(z)).value();
  for (std::size_t b = 0; b < 3; ++b) {
    double want = 0;
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t j = 0; j < 2; ++j) {
        const double s = std::exp(logs.value()(0, i, j)), u = (z(b, i, j) - mean.value()(0, i, j)) / s;
        want += -0.5 * u * u - std::log(s) - 0.5 * std::log(2 * M_PI);
      }
    CHECK(ld(b) == doctest::Approx(want).epsilon(1e-13));
  }
  CHECK(gradcheck([](const In& t) { return flows::DiagonalGaussian<double>(t[1], t[2]).log_prob(t[0]); },
                  {Tensor<double>(z), mean, logs}));
  CHECK(gradcheck([](const In& t) { return flows::StandardLogistic<double>().log_prob(t[0]); }, {Tensor<double>(z)}));
  CHECK_THROWS_AS(d.log_prob(Tensor<double>(randn({3, 3}, 4))), ShapeError);
}

TEST_CASE("samples have the temperature-scaled spread") {
  manual_seed(5);
  const std::size_t n = 200000;
  const double t = 0.7;
  auto moments = [](const Arr& a) {
    const double m = xt::mean(a)();
    return std::pair<double, double>{m, xt::mean((a - m) * (a - m))()};
  };
  auto [gm, gv] = moments(flows::StandardGaussian<double>().sample({n}, t).value());
  CHECK(std::abs(gm) < 0.01);
  CHECK(gv == doctest::Approx(t * t).epsilon(0.02));
  auto [lm, lv] = moments(flows::StandardLogistic<double>().sample({n}, t).value());
  CHECK(std::abs(lm) < 0.02);
  CHECK(lv == doctest::Approx(t * t * M_PI * M_PI / 3).epsilon(0.03));
  flows::DiagonalGaussian<double> d(Tensor<double>(Arr{3.0}), Tensor<double>(Arr{std::log(2.0)}));
  auto [dm, dv] = moments(d.sample({n}, t).value());
  CHECK(dm == doctest::Approx(3.0).epsilon(0.01));
  CHECK(dv == doctest::Approx(4 * t * t).epsilon(0.02));
  // Temperature 0: the mean.
  CHECK(xt::amax(xt::abs(flows::StandardGaussian<double>().sample({5}, 0.0).value()))() == 0.0);
}

TEST_CASE("split: which half is factored out, merge inverts it, conditional prior") {
  Arr x = randn({2, 4, 3, 3}, 10);
  for (auto which : {flows::FactorOut::First, flows::FactorOut::Second}) {
    flows::Split<double> s(which);
    auto parts = s.split(Tensor<double>(x));
    const std::size_t z_from = which == flows::FactorOut::First ? 0 : 2;
    CHECK(parts.z.value() == xt::xarray<double>(xt::view(x, xt::all(), xt::range(z_from, z_from + 2))));
    CHECK(max_abs_diff(s.merge(parts.kept, parts.z).value(), x) == 0.0);
    CHECK(max_abs_diff(s.log_prob(parts.kept, parts.z).value(),
                       flows::StandardGaussian<double>().log_prob(parts.z).value()) == 0.0);
  }
  auto prior = std::make_shared<nn::ZeroConv2d<double>>(2, 4);
  flows::Split<double> s(flows::FactorOut::Second, prior);
  perturb_parameters(s, 0.2, 11);
  auto parts = s.split(Tensor<double>(x));
  std::vector<std::string> names;
  for (auto& [n, t] : s.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"prior.logs", "prior.conv.weight", "prior.conv.bias"});
  CHECK(gradcheck([&](const In& t) { return s.log_prob(t[0], t[1]); }, {parts.kept, parts.z}, s.named_parameters()));
  // Temperature 0 gives the prior's mean, h[:, 0::2].
  NoGrad no_grad;
  Arr h = prior->forward(parts.kept).value();
  CHECK(max_abs_diff(s.sample(parts.kept, 0.0).value(), xt::xarray<double>(xt::view(h, xt::all(), xt::range(0, 4, 2)))) < 1e-15);
  CHECK_THROWS_AS(s.split(Tensor<double>(randn({2, 3, 2, 2}, 12))), ShapeError);
}

TEST_CASE("split: a capped prior keeps log sigma <= 0, bends log sigma > 0 below the cap, and stays differentiable") {
  const double cap = 2;
  Arr x = randn({2, 4, 3, 3}, 20);
  auto prior = std::make_shared<nn::ZeroConv2d<double>>(2, 4);
  flows::Split<double> capped(flows::FactorOut::Second, prior, cap);
  flows::Split<double> free(flows::FactorOut::Second, prior);  // the same net, unbounded
  perturb_parameters(capped, 0.2, 21);
  prior->logs.value().fill(0.3);  // ZeroConv's output times e^0.9: log sigma past the cap both ways
  auto parts = capped.split(Tensor<double>(x));
  Arr unbounded, logs;
  {
    NoGrad no_grad;
    unbounded = std::dynamic_pointer_cast<flows::DiagonalGaussian<double>>(free.prior_given(parts.kept))->log_scale().value();
    logs = std::dynamic_pointer_cast<flows::DiagonalGaussian<double>>(capped.prior_given(parts.kept))->log_scale().value();
  }
  REQUIRE(xt::amax(unbounded)() > cap);  // both sides of 0 and past the cap are exercised
  REQUIRE(xt::amin(unbounded)() < -1.0);
  for (std::size_t i = 0; i < unbounded.size(); ++i) {
    const double r = unbounded.data()[i], l = logs.data()[i];
    CHECK(l == doctest::Approx(r > 0 ? cap * std::tanh(r / cap) : r).epsilon(1e-14));
    CHECK(l <= cap);  // < in exact arithmetic; tanh rounds to 1 far out
  }
  CHECK(gradcheck([&](const In& t) { return capped.log_prob(t[0], t[1]); }, {parts.kept, parts.z},
                  capped.named_parameters()));
  // A prior that asks for an enormous sigma: unbounded it overflows, capped it cannot.
  for (std::size_t i = 1; i < 4; i += 2) prior->conv->bias.value()(i) = 1e3;
  NoGrad no_grad;
  CHECK(!xt::all(xt::isfinite(free.sample(parts.kept, 1.0).value())));
  Arr z = capped.sample(parts.kept, 1.0).value();
  CHECK(xt::all(xt::isfinite(z)));
  CHECK_THROWS_AS(flows::Split<double>(flows::FactorOut::Second, prior, -1.0), std::invalid_argument);
  CHECK_THROWS_AS(flows::Split<double>(flows::FactorOut::Second, prior, std::nan("")), std::invalid_argument);
}
