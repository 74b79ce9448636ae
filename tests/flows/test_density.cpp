// The density is a density: a 2-D flow built from the same layers (couplings, scaling,
// ActNorm, both 1x1 convs, a split with a learned conditional prior, a learned top
// prior) integrates to 1 over a fine grid; so does the logit layer's density on (0,1).
#include <doctest/doctest.h>

#include <cmath>
#include <memory>

#include "autograd/shape.hpp"
#include "flow_checks.hpp"
#include "flows/actnorm.hpp"
#include "flows/coupling.hpp"
#include "flows/invconv.hpp"
#include "flows/logit.hpp"
#include "flows/model.hpp"
#include "nn/activation.hpp"
#include "nn/conv2d.hpp"
#include "nn/linear.hpp"
#include "nn/sequential.hpp"
#include "nn/zero_conv.hpp"

using namespace flowgrad;
using namespace flow_checks;
using L = std::shared_ptr<nn::Layer<double>>;

namespace {
// (B, from...) <-> (B, to...), logdet 0.
struct Reshape : flows::Flow<double> {
  Shape from, to;
  Reshape(Shape f, Shape t) : from(std::move(f)), to(std::move(t)) {}
  static Shape batched(std::size_t b, const Shape& s) {
    Shape out{b};
    out.insert(out.end(), s.begin(), s.end());
    return out;
  }
  flows::FlowResult<double> forward(const Tensor<double>& x) override {
    return {reshape(x, batched(x.shape()[0], to)), flows::zero_logdet<double>(x.shape()[0])};
  }
  flows::FlowResult<double> inverse(const Tensor<double>& y) override {
    return {reshape(y, batched(y.shape()[0], from)), flows::zero_logdet<double>(y.shape()[0])};
  }
};

std::shared_ptr<nn::Sequential<double>> seq(std::vector<L> layers) {
  return std::make_shared<nn::Sequential<double>>(std::move(layers));
}

struct TwoD : flows::FlowModel<double> {
  TwoD() {
    name_ = "TwoD";
    input_shape_ = {2};
    auto flow = register_module("flow", std::make_shared<flows::FlowSequence<double>>());
    auto tanh = [] { return std::make_shared<nn::Tanh<double>>(); };
    flow->push_back(std::make_shared<flows::AdditiveCoupling<double>>(
        seq({std::make_shared<nn::Linear<double>>(1, 8), tanh(), std::make_shared<nn::Linear<double>>(8, 1)}), 0));
    flow->push_back(std::make_shared<flows::ActNorm<double>>(2, 2))->set_data_init(false);
    flow->push_back(std::make_shared<flows::AdditiveCoupling<double>>(
        seq({std::make_shared<nn::Linear<double>>(1, 8), tanh(), std::make_shared<nn::Linear<double>>(8, 1)}), 1));
    flow->push_back(std::make_shared<flows::DiagonalScaling<double>>(Shape{2}));
    flow->push_back(std::make_shared<flows::InvConv1x1<double>>(2));
    flow->push_back(std::make_shared<Reshape>(Shape{2}, Shape{2, 1, 1}));
    flow->push_back(std::make_shared<flows::AffineCoupling<double>>(
        flows::channel_mask<double>(2, 1, 1, true),
        seq({std::make_shared<nn::Conv2d<double>>(2, 8, 1), tanh(), std::make_shared<nn::Conv2d<double>>(8, 4, 1)})));
    flow->push_back(std::make_shared<flows::InvConv1x1LU<double>>(2));
    flow->push_back(std::make_shared<flows::GlowCoupling<double>>(
        seq({std::make_shared<nn::Conv2d<double>>(1, 8, 1), tanh(), std::make_shared<nn::Conv2d<double>>(8, 2, 1)})));
    auto prior = register_module("prior", std::make_shared<nn::ZeroConv2d<double>>(1, 2));
    levels_.push_back({flow, std::make_shared<flows::Split<double>>(flows::FactorOut::Second, prior)});
    auto top = register_module("top", std::make_shared<flows::FlowSequence<double>>());
    top->push_back(std::make_shared<flows::ActNorm<double>>(1))->set_data_init(false);
    levels_.push_back({top, nullptr});
    auto mean = register_parameter("top_mean", xt::zeros<double>({1, 1, 1, 1}));
    auto logs = register_parameter("top_logs", xt::zeros<double>({1, 1, 1, 1}));
    top_prior_ = std::make_shared<flows::DiagonalGaussian<double>>(mean, logs);
    top_shape_ = {1, 1, 1};
  }
};
}  // namespace

TEST_CASE("a 2-D flow of the library's layers integrates to 1") {
  manual_seed(1);  // the layers' random init: some draws put mass beyond the grid
  TwoD model;
  perturb_parameters(model, 0.3, 1);
  // Sanity: it is still invertible and its logdet is the Jacobian's.
  Arr probe = randn({3, 2}, 2);
  auto lat = model.forward(Tensor<double>(probe));
  CHECK(max_abs_diff(model.inverse(lat.zs).y.value(), probe) < 1e-12);

  const double lo = -12, hi = 12;
  const std::size_t n = 601;
  const double h = (hi - lo) / (n - 1);
  double total = 0, edge = 0;
  NoGrad no_grad;
  for (std::size_t i = 0; i < n; ++i) {  // one grid row per batch
    Arr x = Arr::from_shape({n, 2});
    for (std::size_t j = 0; j < n; ++j) x(j, 0) = lo + i * h, x(j, 1) = lo + j * h;
    Arr p = xt::exp(model.log_prob(Tensor<double>(x)).value());
    total += xt::sum(p)() * h * h;
    if (i == 0 || i == n - 1) edge = std::max(edge, xt::amax(p)());
    edge = std::max({edge, p(0), p(n - 1)});
  }
  MESSAGE("2-D flow: integral of exp(log p) over [-12, 12]^2 = 1 + " << total - 1 << ", largest density on the border " << edge);
  CHECK(std::abs(total - 1) < 0.01);
  CHECK(edge < 1e-6);  // the mass is inside the grid
}

TEST_CASE("the logit layer's density on (0,1) integrates to 1") {
  flows::Logit<double> logit(1e-6);
  flows::StandardGaussian<double> g;
  const std::size_t n = 200000;
  Arr x = Arr::from_shape({n, 1});
  for (std::size_t i = 0; i < n; ++i) x(i, 0) = (i + 0.5) / n;  // midpoints
  NoGrad no_grad;
  auto r = logit.forward(Tensor<double>(x));
  Arr p = xt::exp(g.log_prob(r.y).value() + r.logdet.value());
  const double total = xt::sum(p)() / n;
  MESSAGE("logit + N(0,1): integral over (0,1) = 1 + " << total - 1);
  CHECK(std::abs(total - 1) < 1e-3);
}
