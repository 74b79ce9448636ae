// Every flow layer: inverse(forward(x)) = x, logdet = log|det J| of the full Jacobian
// (reverse mode, factored with our LU), inverse logdet = -forward logdet, gradcheck of
// forward and inverse in inputs and parameters. All in float64, small sizes.
#include <doctest/doctest.h>

#include <memory>

#include "autograd/gradcheck.hpp"
#include "flow_checks.hpp"
#include "flows/actnorm.hpp"
#include "flows/coupling.hpp"
#include "flows/flow.hpp"
#include "flows/invconv.hpp"
#include "flows/linalg.hpp"
#include "flows/logit.hpp"
#include "flows/squeeze.hpp"
#include "nn/activation.hpp"
#include "nn/conv2d.hpp"
#include "flows/glow.hpp"
#include "nn/linear.hpp"
#include "nn/resnet_st.hpp"
#include "nn/sequential.hpp"
#include "nn/zero_conv.hpp"

using namespace flowgrad;
using namespace flow_checks;
using In = std::vector<Tensor<double>>;
using flows::Flow;

namespace {
struct Worst {
  double inverse = 0, logdet = 0;
} worst;

// All the checks on one layer at input x: the library's check_flow, on the parameters as
// each test set them (perturbed where they start at zero).
void check_layer(Flow<double>& f, const Arr& x, bool check_grads = true) {
  flows::FlowCheckOptions options;
  options.perturb = 0, options.gradients = check_grads;
  const auto r = flows::check_flow(f, x, options);
  CHECK_MESSAGE(r.ok, r.report);
  worst.inverse = std::max({worst.inverse, r.inverse_error, r.latent_inverse_error});
  worst.logdet = std::max({worst.logdet, r.logdet_error, r.inverse_logdet_error});
}

std::shared_ptr<nn::Sequential<double>> mlp(std::size_t in, std::size_t hidden, std::size_t out) {
  auto net = std::make_shared<nn::Sequential<double>>();
  net->push_back(std::make_shared<nn::Linear<double>>(in, hidden));
  net->push_back(std::make_shared<nn::Tanh<double>>());
  net->push_back(std::make_shared<nn::Linear<double>>(hidden, out));
  return net;
}
}  // namespace

TEST_CASE("NICE additive coupling, both parities, and the diagonal scaling") {
  manual_seed(100);
  for (int parity : {0, 1}) {
    flows::AdditiveCoupling<double> f(mlp(4, 16, 4), parity);
    check_layer(f, randn({3, 8}, 1 + parity));
  }
  flows::DiagonalScaling<double> s(Shape{8});
  perturb_parameters(s, 0.5, 3);
  check_layer(s, randn({3, 8}, 4));
}

TEST_CASE("additive coupling keeps the conditioning half and interleaves like the reference") {
  manual_seed(200);
  auto net = mlp(2, 4, 2);
  flows::AdditiveCoupling<double> even(net, 0), odd(net, 1);
  Arr x = randn({1, 4}, 5);
  Arr ye = even.forward(Tensor<double>(x)).y.value();
  Arr yo = odd.forward(Tensor<double>(x)).y.value();
  CHECK(ye(0, 0) == x(0, 0));  // parity 0 keeps x[:, 0::2]
  CHECK(ye(0, 2) == x(0, 2));
  CHECK(ye(0, 1) != x(0, 1));
  CHECK(yo(0, 1) == x(0, 1));  // parity 1 keeps x[:, 1::2]
  CHECK(yo(0, 3) == x(0, 3));
  CHECK(yo(0, 0) != x(0, 0));
  CHECK_THROWS_AS(even.forward(Tensor<double>(randn({2, 5}, 6))), ShapeError);
}

TEST_CASE("Real NVP affine coupling: checkerboard and channel masks") {
  manual_seed(300);
  for (int parity : {0, 1}) {
    flows::AffineCoupling<double> f(flows::checkerboard_mask<double>(2, 4, 4, parity),
                                    std::make_shared<nn::ResNetST<double>>(2, 6, 1));
    perturb_parameters(f, 0.1, 10 + parity);
    check_layer(f, randn({2, 2, 4, 4}, 12 + parity));
  }
  for (bool first : {true, false}) {
    flows::AffineCoupling<double> f(flows::channel_mask<double>(4, 2, 2, first),
                                    std::make_shared<nn::ResNetST<double>>(4, 6, 1));
    perturb_parameters(f, 0.1, 20 + first);
    check_layer(f, randn({2, 4, 2, 2}, 22 + first));
  }
}

TEST_CASE("affine coupling masks match the reference's") {
  manual_seed(400);
  auto m = flows::checkerboard_mask<double>(1, 2, 3, 0);
  CHECK(m == Arr{{{1., 0., 1.}, {0., 1., 0.}}});
  auto m1 = flows::checkerboard_mask<double>(1, 2, 3, 1);
  CHECK(m1 == Arr{{{0., 1., 0.}, {1., 0., 1.}}});
  auto c = flows::channel_mask<double>(4, 1, 1, true);
  CHECK((c(0, 0, 0) == 1 && c(1, 0, 0) == 1 && c(2, 0, 0) == 0 && c(3, 0, 0) == 0));
  // Masked entries pass through unchanged; a fresh coupling (zero `out` conv) is the identity.
  flows::AffineCoupling<double> f(m, std::make_shared<nn::ResNetST<double>>(1, 4, 1));
  Arr x = randn({2, 1, 2, 3}, 30);
  auto r = f.forward(Tensor<double>(x));
  CHECK(max_abs_diff(r.y.value(), x) == 0.0);
  CHECK(max_abs_diff(r.logdet.value(), Arr{0.0, 0.0}) == 0.0);
  perturb_parameters(f, 0.2, 31);
  Arr y = f.forward(Tensor<double>(x)).y.value();
  CHECK(y(0, 0, 0, 0) == x(0, 0, 0, 0));
  CHECK(y(0, 0, 0, 1) != x(0, 0, 0, 1));
}

TEST_CASE("Glow coupling, affine and additive") {
  manual_seed(500);
  {
    flows::GlowCoupling<double> f(flows::glow_coupling_net<double>(2, 4, 6), true);
    perturb_parameters(f, 0.1, 40);
    check_layer(f, randn({2, 4, 3, 3}, 41));
  }
  {
    auto net = std::make_shared<nn::Sequential<double>>(std::vector<std::shared_ptr<nn::Layer<double>>>{
        std::make_shared<nn::Conv2d<double>>(2, 6, 3, 3, 1, 1), std::make_shared<nn::ReLU<double>>(),
        std::make_shared<nn::ZeroConv2d<double>>(6, 2)});
    flows::GlowCoupling<double> f(net, false);
    perturb_parameters(f, 0.1, 42);
    check_layer(f, randn({2, 4, 3, 3}, 43));
    // A net with the wrong output width is caught, naming the layer.
    flows::GlowCoupling<double> wrong(flows::glow_coupling_net<double>(2, 4, 6), false);
    CHECK_THROWS_AS(wrong.forward(Tensor<double>(randn({1, 4, 2, 2}, 44))), ShapeError);
  }
}

TEST_CASE("Glow coupling with the bounded scale exp(c tanh(h / c)), plain and ActNorm nets") {
  manual_seed(510);
  for (double clamp : {0.5, 2.0}) {
    CAPTURE(clamp);
    flows::GlowCoupling<double> f(flows::glow_coupling_net<double>(2, 4, 6), true, clamp);
    perturb_parameters(f, 0.3, 45);
    check_layer(f, randn({2, 4, 3, 3}, 46));
  }
  // openai/glow's nets: ActNorm after each hidden conv (initialised from the first batch).
  flows::GlowCoupling<double> f(flows::glow_coupling_net<double>(2, 4, 6, true), true, 2.0);
  const Arr x = randn({3, 4, 3, 3}, 47);
  f.forward(Tensor<double>(x));  // data-dependent init of the nets' ActNorms
  perturb_parameters(f, 0.2, 48);
  check_layer(f, x);
  CHECK_THROWS_AS(flows::GlowCoupling<double>(flows::glow_coupling_net<double>(2, 4, 6), true, -1.0),
                  std::invalid_argument);
}

namespace {
// A net whose output is the same huge value everywhere: the worst a trained net can do.
struct ConstantNet : nn::Layer<double> {
  double value;
  std::size_t out;
  ConstantNet(double v, std::size_t o) : value(v), out(o) {}
  Tensor<double> forward(const Tensor<double>& x) override {
    Shape s = x.shape();
    s[1] = out;
    auto h = xt::xarray<double>::from_shape(s);
    h.fill(value);
    return Tensor<double>(h);
  }
};
}  // namespace

TEST_CASE("a coupling whose net outputs +-1e3 still inverts to finite values with a finite logdet") {
  const Arr y = randn({2, 4, 3, 3}, 49, 3.0);
  for (double net_out : {1e3, -1e3}) {
    CAPTURE(net_out);
    // Glow with the bounded scale: |log scale| <= c, so 1 / scale <= e^c.
    flows::GlowCoupling<double> glow(std::make_shared<ConstantNet>(net_out, 4), true, 2.0);
    auto inv = glow.inverse(Tensor<double>(y));
    CHECK(xt::all(xt::isfinite(inv.y.value())));
    CHECK(xt::all(xt::isfinite(inv.logdet.value())));
    CHECK(xt::amax(xt::abs(inv.logdet.value()))() <= 2.0 * 2 * 9 + 1e-9);  // c per transformed value
    auto back = glow.forward(inv.y);
    CHECK(xt::all(xt::isfinite(back.y.value())));
    CHECK(max_abs_diff(back.logdet.value(), -inv.logdet.value()) < 1e-9);
    // Real NVP's s = scale * tanh(h) is bounded by its scale parameter (1 at init).
    flows::AffineCoupling<double> nvp(flows::checkerboard_mask<double>(4, 3, 3, 0),
                                      std::make_shared<ConstantNet>(net_out, 8));
    auto inv2 = nvp.inverse(Tensor<double>(y));
    CHECK(xt::all(xt::isfinite(inv2.y.value())));
    CHECK(xt::all(xt::isfinite(inv2.logdet.value())));
  }
  // The reference's sigmoid(h + 2) is what overflows: its inverse divides by sigmoid(-998) = 0.
  flows::GlowCoupling<double> sigmoid(std::make_shared<ConstantNet>(-1e3, 4), true, 0.0);
  CHECK_FALSE(xt::all(xt::isfinite(sigmoid.inverse(Tensor<double>(y)).y.value())));
}

TEST_CASE("ActNorm") {
  manual_seed(600);
  flows::ActNorm<double> f(3);
  f.set_data_init(false);
  perturb_parameters(f, 0.3, 50);
  check_layer(f, randn({2, 3, 4, 4}, 51));
  flows::ActNorm<double> flat(3, 2);
  flat.set_data_init(false);
  perturb_parameters(flat, 0.3, 52);
  check_layer(flat, randn({4, 3}, 53));
  CHECK_THROWS_AS(f.forward(Tensor<double>(randn({2, 4, 2, 2}, 54))), ShapeError);
}

TEST_CASE("invertible 1x1 convolution: dense and LU") {
  manual_seed(700);
  flows::InvConv1x1<double> dense(4);
  perturb_parameters(dense, 0.2, 60);
  check_layer(dense, randn({2, 4, 3, 3}, 61));
  check_layer(dense, randn({3, 4}, 62));
  flows::InvConv1x1LU<double> lu(4);
  perturb_parameters(lu, 0.2, 63);
  check_layer(lu, randn({2, 4, 3, 3}, 64));
  check_layer(lu, randn({3, 4}, 65));
}

TEST_CASE("the LU 1x1 conv starts as the reference's: W = P L U orthogonal, masks, signs") {
  manual_seed(800);
  const std::size_t c = 5;
  flows::InvConv1x1LU<double> f(c);
  Arr w = f.matrix().value();
  for (std::size_t i = 0; i < c; ++i)
    for (std::size_t j = 0; j < c; ++j) {
      double dot = 0;
      for (std::size_t k = 0; k < c; ++k) dot += w(k, i) * w(k, j);
      CHECK(dot == doctest::Approx(i == j ? 1.0 : 0.0).epsilon(1e-12));
      CHECK(f.lmask.value()(i, j) == (j < i ? 1.0 : 0.0));
      CHECK(f.L.value()(i, j) == (j > i ? 0.0 : f.L.value()(i, j)));  // lower, unit diagonal
      if (i == j) CHECK(f.L.value()(i, j) == 1.0);
      if (j <= i) CHECK(f.U.value()(i, j) == 0.0);                    // strictly upper
    }
  for (std::size_t i = 0; i < c; ++i) CHECK(std::abs(f.sign_s.value()(i)) == 1.0);
  // P is a permutation matrix.
  CHECK(xt::sum(f.P.value())() == doctest::Approx(double(c)));
  CHECK(std::abs(flows::slogdet(f.P.value()).sign) == 1.0);
  // logdet = H*W*sum(log_s) = H*W*log|det W| = 0 for an orthogonal start.
  auto r = f.forward(Tensor<double>(randn({1, c, 2, 2}, 66)));
  CHECK(std::abs(r.logdet.value()(0)) < 1e-12);
  std::vector<std::string> names;
  for (auto& [n, t] : f.state()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"L", "U", "log_s", "P", "sign_s", "lmask"});
}

TEST_CASE("squeeze: the reference's channel order, and its inverse") {
  manual_seed(900);
  Arr x = randn({2, 3, 4, 6}, 70);
  Arr y = flows::squeeze2x2(Tensor<double>(x)).value();
  REQUIRE(y.shape() == std::vector<std::size_t>{2, 12, 2, 3});
  bool same = true;
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t ch = 0; ch < 3; ++ch)
      for (std::size_t dy = 0; dy < 2; ++dy)
        for (std::size_t dx = 0; dx < 2; ++dx)
          for (std::size_t i = 0; i < 2; ++i)
            for (std::size_t j = 0; j < 3; ++j)
              same = same && y(b, ch * 4 + 2 * dy + dx, i, j) == x(b, ch, 2 * i + dy, 2 * j + dx);
  CHECK(same);
  flows::Squeeze<double> f;
  check_layer(f, x);
  CHECK_THROWS_AS(f.forward(Tensor<double>(randn({1, 1, 3, 4}, 71))), ShapeError);
}

TEST_CASE("logit preprocessing: exact logdet for alpha = 0.05 and 1e-6") {
  manual_seed(1000);
  for (double alpha : {0.05, 1e-6}) {
    flows::Logit<double> f(alpha);
    check_layer(f, rand_uniform({2, 2, 3, 3}, 80, 0.0, 1.0));
    // y = logit(alpha + (1 - 2 alpha) x) at x = 0.5 is 0; at x = 0 it is logit(alpha).
    Arr x = {{0.5, 0.0}};
    Arr y = f.forward(Tensor<double>(x)).y.value();
    CHECK(y(0, 0) == doctest::Approx(0.0));
    CHECK(y(0, 1) == doctest::Approx(std::log(alpha / (1 - alpha))));
  }
  CHECK_THROWS(flows::Logit<double>(0.5));
}

TEST_CASE("FlowSequence sums logdets and inverts in reverse order") {
  manual_seed(1100);
  flows::FlowSequence<double> seq;
  seq.push_back(std::make_shared<flows::ActNorm<double>>(4))->set_data_init(false);
  seq.push_back(std::make_shared<flows::InvConv1x1LU<double>>(4));
  seq.push_back(std::make_shared<flows::GlowCoupling<double>>(flows::glow_coupling_net<double>(2, 4, 6)));
  seq.push_back(std::make_shared<flows::Squeeze<double>>());
  seq.push_back(std::make_shared<flows::InvConv1x1<double>>(16));
  perturb_parameters(seq, 0.1, 90);
  Arr x = randn({2, 4, 2, 2}, 91);
  check_layer(seq, x, false);
  // The sum of the parts' logdets.
  Tensor<double> h(x);
  Arr total = xt::zeros<double>({2});
  for (std::size_t i = 0; i < seq.size(); ++i) {
    auto r = seq[i].forward(h);
    h = r.y;
    total += r.logdet.value();
  }
  CHECK(max_abs_diff(seq.forward(Tensor<double>(x)).logdet.value(), total) < 1e-12);
  std::vector<std::string> names;
  for (auto& [n, t] : seq.named_parameters()) names.push_back(n);
  CHECK(names.front() == "0.loc");
  CHECK(names.back() == "4.weight");
  MESSAGE("layers: worst inverse error " << worst.inverse << ", worst logdet error " << worst.logdet);
}
