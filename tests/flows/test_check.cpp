// flows::check_flow, the public check of a flow layer: it passes real layers and names what
// is wrong in broken ones; gradcheck refuses an input that is not a leaf.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "flows/actnorm.hpp"
#include "flows/check.hpp"
#include "flows/coupling.hpp"
#include "flows/glow.hpp"

using namespace flowgrad;
using Arr = xt::xarray<double>;

namespace {
Arr batch(unsigned seed) {
  Arr x = Arr::from_shape({2, 4, 3, 3});
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n;
  for (auto& v : x) v = n(rng);
  return x;
}

// y = x * e^s elementwise, with a mistake to choose.
struct ScaleFlow : flows::Flow<double> {
  enum class Bug { None, Logdet, Inverse };
  Bug bug;
  Tensor<double> log_scale;
  explicit ScaleFlow(Bug b) : bug(b) {
    log_scale = register_parameter("log_scale", xt::xarray<double>(xt::zeros<double>({std::size_t(1), std::size_t(4), std::size_t(1), std::size_t(1)})));
  }
  flows::FlowResult<double> forward(const Tensor<double>& x) override {
    const double per_pixel = double(x.shape()[2] * x.shape()[3]);
    auto logdet = sum(log_scale) * (bug == Bug::Logdet ? 1.0 : per_pixel);  // the bug: pixels forgotten
    return {x * exp(log_scale), flows::per_example(logdet, x.shape()[0])};
  }
  flows::FlowResult<double> inverse(const Tensor<double>& y) override {
    const double per_pixel = double(y.shape()[2] * y.shape()[3]);
    auto x = bug == Bug::Inverse ? y * exp(log_scale) : y * exp(-log_scale);  // the bug: wrong sign
    return {x, flows::per_example(sum(log_scale) * -per_pixel, y.shape()[0])};
  }
};
}  // namespace

TEST_CASE("check_flow passes real layers, their zero-initialised parameters perturbed") {
  flows::GlowCoupling<double> coupling(flows::glow_coupling_net<double>(2, 4, 5), true, 2.0);
  const auto r = flows::check_flow(coupling, batch(1));
  CHECK_MESSAGE(r.ok, r.report);
  CHECK(r.logdet_error < 1e-6);
  CHECK(r.forward_grad.checked > 100);  // the input and every parameter
  flows::ActNorm<double> actnorm(4);
  actnorm.set_data_init(false);
  CHECK(flows::check_flow(actnorm, batch(2)));
  CHECK(flows::check_flow(*std::make_shared<ScaleFlow>(ScaleFlow::Bug::None), batch(3)));
}

TEST_CASE("check_flow names the broken check") {
  ScaleFlow wrong_logdet(ScaleFlow::Bug::Logdet);
  auto r = flows::check_flow(wrong_logdet, batch(4));
  CHECK_FALSE(r.ok);
  CHECK(r.report.find("FAIL  forward logdet - log|det dy/dx|") != std::string::npos);
  CHECK(r.report.find("ok    x -> y -> x") != std::string::npos);

  ScaleFlow wrong_inverse(ScaleFlow::Bug::Inverse);
  r = flows::check_flow(wrong_inverse, batch(5));
  CHECK_FALSE(r.ok);
  CHECK(r.report.find("FAIL  x -> y -> x") != std::string::npos);
  CHECK(r.inverse_error > 1e-3);
}

TEST_CASE("unperturbed, a zero-initialised layer is the identity and checks nothing") {
  flows::GlowCoupling<double> coupling(flows::glow_coupling_net<double>(2, 4, 5), true, 2.0);
  flows::FlowCheckOptions as_it_is;
  as_it_is.perturb = 0, as_it_is.gradients = false;
  const Arr x = batch(6);
  CHECK(flows::check_flow(coupling, x, as_it_is));
  NoGrad no_grad;
  CHECK(xt::amax(xt::abs(coupling.forward(Tensor<double>(x)).y.value() - x))() == 0.0);
}

TEST_CASE("gradcheck refuses an input that is not a leaf, and says what to do") {
  Tensor<double> x(Arr{1.0, 2.0}, true);
  const auto doubled = x * 2.0;
  using In = std::vector<Tensor<double>>;
  std::string message;
  try {
    gradcheck([](const In& t) { return exp(t[0]); }, {doubled});
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  CHECK(message.find("input 0 is the output of the op 'mul_scalar', not a leaf; pass Tensor<double>(t.value())") !=
        std::string::npos);
}
