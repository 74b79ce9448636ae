// Conv2d, BatchNorm2d, ZeroConv2d and the s/t networks: init, names and parameter counts
// as the PyTorch reference, statistics, and gradchecks of the whole networks.
#include <doctest/doctest.h>

#include "support.hpp"

#include <cmath>
#include <random>
#include <string>

#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>

#include "autograd/autograd.hpp"
#include "autograd/conv.hpp"
#include "autograd/gradcheck.hpp"
#include "nn/batchnorm.hpp"
#include "nn/conv2d.hpp"
#include "flows/glow.hpp"
#include "nn/resnet_st.hpp"
#include "nn/zero_conv.hpp"

using namespace flowgrad;
using In = std::vector<Tensor<double>>;

namespace {

using flowgrad::testing::rand_tensor;

template <class T>
std::vector<std::string> names(const nn::Named<T>& named) {
  std::vector<std::string> out;
  for (auto& [name, t] : named) out.push_back(name);
  return out;
}

// Zero-initialised layers make a gradcheck trivial: give them random values first.
void perturb(Tensor<double>& t, unsigned seed) { t.value() = rand_tensor<double>(t.shape(), seed, -0.5, 0.5).value(); }

}  // namespace

TEST_CASE("Conv2d: PyTorch's names, shapes and default init U(-1/sqrt(fan_in), +)") {
  manual_seed(3);
  nn::Conv2d<float> conv(16, 32, 3, 3, 1, 1);
  CHECK(names(conv.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(conv.weight.shape() == Shape{32, 16, 3, 3});
  CHECK(conv.bias.shape() == Shape{32});
  const float bound = 1.f / 12.f;  // fan_in = 16 * 3 * 3 = 144
  for (auto* t : {&conv.weight, &conv.bias}) {
    CHECK(xt::amax(t->value())() <= bound);
    CHECK(xt::amin(t->value())() >= -bound);
    CHECK(xt::amax(t->value())() > 0.9f * bound);  // spread over the range, not squeezed
    CHECK(xt::amin(t->value())() < -0.9f * bound);
  }
  nn::Conv2d<float> rect(2, 3, 2, 5, 2, 0, false);
  CHECK(rect.weight.shape() == Shape{3, 2, 2, 5});
  CHECK_FALSE(rect.bias.defined());
  CHECK(names(rect.named_parameters()) == std::vector<std::string>{"weight"});
  CHECK(nn::Conv2d<float>(4, 5, 3).weight.shape() == Shape{5, 4, 3, 3});  // kw defaults to kh

  auto x = rand_tensor<float>({2, 16, 7, 7}, 4);
  auto y = conv(x);
  CHECK(y.shape() == Shape{2, 32, 7, 7});
  CHECK(y.value() == conv2d(x, conv.weight, conv.bias, 1, 1).value());
  CHECK(rect(rand_tensor<float>({1, 2, 6, 9}, 5)).shape() == Shape{1, 3, 3, 3});
  CHECK_THROWS_AS(nn::Conv2d<float>(0, 3, 3), std::invalid_argument);
}

TEST_CASE("BatchNorm2d: batch statistics in training, running ones in eval") {
  nn::BatchNorm2d<double> bn(3);
  CHECK(names(bn.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(names(bn.named_buffers()) ==
        std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});
  CHECK(bn.num_batches_tracked.shape() == Shape{});

  auto x = rand_tensor<double>({4, 3, 5, 6}, 11, -2, 3);
  // Per-channel statistics by hand.
  const std::size_t count = 4 * 5 * 6;
  std::vector<double> m(3, 0.0), v(3, 0.0);
  for (std::size_t n = 0; n < 4; ++n)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t i = 0; i < 30; ++i) m[c] += x.value().data()[(n * 3 + c) * 30 + i] / count;
  for (std::size_t n = 0; n < 4; ++n)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t i = 0; i < 30; ++i) {
        const double d = x.value().data()[(n * 3 + c) * 30 + i] - m[c];
        v[c] += d * d / count;  // biased
      }

  auto y = bn(x);
  for (std::size_t c = 0; c < 3; ++c) {
    CAPTURE(c);
    double ym = 0, yv = 0;
    for (std::size_t n = 0; n < 4; ++n)
      for (std::size_t i = 0; i < 30; ++i) ym += y.value().data()[(n * 3 + c) * 30 + i] / count;
    for (std::size_t n = 0; n < 4; ++n)
      for (std::size_t i = 0; i < 30; ++i) {
        const double d = y.value().data()[(n * 3 + c) * 30 + i] - ym;
        yv += d * d / count;
      }
    CHECK(ym == doctest::Approx(0.0).epsilon(1e-12).scale(1));
    CHECK(yv == doctest::Approx(v[c] / (v[c] + 1e-5)).epsilon(1e-12));
    CHECK(bn.running_mean.value()(c) == doctest::Approx(0.1 * m[c]).epsilon(1e-12));
    CHECK(bn.running_var.value()(c) ==
          doctest::Approx(0.9 + 0.1 * v[c] * count / (count - 1)).epsilon(1e-12));
  }
  CHECK(bn.num_batches_tracked.item() == 1.0);

  // eval: (x - running_mean) / sqrt(running_var + eps) * weight + bias, stats untouched.
  bn.weight.value() = xt::xarray<double>{0.5, -1.0, 2.0};
  bn.bias.value() = xt::xarray<double>{0.1, 0.2, -0.3};
  bn.eval();
  const xt::xarray<double> rm = bn.running_mean.value(), rv = bn.running_var.value();
  auto ye = bn(x);
  for (std::size_t n = 0; n < 4; ++n)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t i = 0; i < 30; ++i) {
        const std::size_t k = (n * 3 + c) * 30 + i;
        const double want = (x.value().data()[k] - rm(c)) / std::sqrt(rv(c) + 1e-5) *
                                bn.weight.value()(c) + bn.bias.value()(c);
        REQUIRE(ye.value().data()[k] == doctest::Approx(want).epsilon(1e-12));
      }
  CHECK(bn.running_mean.value() == rm);
  CHECK(bn.num_batches_tracked.item() == 1.0);

  bn.train();
  CHECK_THROWS_AS(bn(rand_tensor<double>({1, 3, 1, 1}, 12)), ShapeError);  // one value per channel
  CHECK_THROWS_AS(bn(rand_tensor<double>({2, 4, 3, 3}, 12)), ShapeError);
}

TEST_CASE("BatchNorm2d gradcheck, train and eval") {
  nn::BatchNorm2d<double> bn(2);
  bn.weight.value() = xt::xarray<double>{1.5, -0.7};
  bn.bias.value() = xt::xarray<double>{0.3, 0.1};
  auto x = rand_tensor<double>({3, 2, 3, 4}, 21);
  auto f = [&](const In& t) { return bn(t[0]); };
  CHECK(gradcheck(f, {x}, bn.named_parameters()));
  bn.eval();
  CHECK(gradcheck(f, {x}, bn.named_parameters()));
}

TEST_CASE("ZeroConv2d: starts at zero; conv(x) * exp(3 logs)") {
  nn::ZeroConv2d<double> z(4, 8);
  CHECK(names(z.named_parameters()) ==
        std::vector<std::string>{"logs", "conv.weight", "conv.bias"});
  CHECK(z.parameter_count() == 304);  // reference: ZeroConv(4, 8)
  CHECK(z.logs.shape() == Shape{1, 8, 1, 1});
  auto x = rand_tensor<double>({2, 4, 5, 5}, 31);
  CHECK(xt::amax(xt::abs(z(x).value()))() == 0.0);

  perturb(z.conv->weight, 32);
  perturb(z.conv->bias, 33);
  perturb(z.logs, 34);
  auto y = z(x).value();
  auto c = z.conv->forward(x).value();
  for (std::size_t o = 0; o < 8; ++o)
    CHECK(y(1, o, 2, 3) == doctest::Approx(c(1, o, 2, 3) * std::exp(3 * z.logs.value()(0, o, 0, 0))));
  auto small = rand_tensor<double>({2, 4, 3, 3}, 35);
  CHECK(gradcheck([&](const In& t) { return z(t[0]); }, {small}, z.named_parameters()));
}

TEST_CASE("ResNetST: the reference's names and parameter counts; zero output at init") {
  nn::ResNetST<float> net(1, 64, 4);
  // Counts and names from /work/shared/reference/torch_flows.py:
  //   sum(p.numel() for p in ResNetST(1, 64, 4).parameters()) == 297218, (4, 64, 4): 302408
  CHECK(net.parameter_count() == 297218);
  CHECK(nn::ResNetST<float>(4, 64, 4).parameter_count() == 302408);
  auto n = names(net.named_parameters());
  REQUIRE(n.size() == 20);
  CHECK(n[0] == "inp.weight");
  CHECK(n[2] == "blocks.0.1.weight");
  CHECK(n[5] == "blocks.0.3.bias");
  CHECK(n[17] == "blocks.3.3.bias");
  CHECK(n[18] == "out.weight");
  CHECK(n[19] == "out.bias");
  auto y = net(rand_tensor<float>({2, 1, 8, 8}, 41));
  CHECK(y.shape() == Shape{2, 2, 8, 8});
  CHECK(xt::amax(xt::abs(y.value()))() == 0.0f);
}

TEST_CASE("ResNetST gradcheck (2 channels, 6x6, mid 4, 1 block)") {
  manual_seed(5);
  nn::ResNetST<double> net(2, 4, 1);
  CHECK(net.parameter_count() == 520);  // reference: ResNetST(2, 4, 1)
  perturb(net.out->weight, 51);
  perturb(net.out->bias, 52);
  auto x = rand_tensor<double>({2, 2, 6, 6}, 53);
  CHECK(gradcheck([&](const In& t) { return net(t[0]); }, {x}, net.named_parameters()));
}

TEST_CASE("Glow coupling net: the reference's names and counts; gradcheck") {
  auto big = flows::glow_coupling_net<float>(2, 4, 128);
  // reference: sum(p.numel() for p in GlowCoupling(c, 128).net.parameters()), c = 4 and 8
  CHECK(big->parameter_count() == 23560);
  CHECK(flows::glow_coupling_net<float>(4, 8, 128)->parameter_count() == 30480);
  CHECK(names(big->named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "4.logs",
                                 "4.conv.weight", "4.conv.bias"});
  CHECK_THROWS_AS(flows::glow_coupling_net<float>(0, 8, 8), std::invalid_argument);
  // openai/glow's form: hidden convs without bias, each followed by ActNorm.
  CHECK(names(flows::glow_coupling_net<float>(2, 4, 8, true)->named_parameters()) ==
        std::vector<std::string>{"0.weight", "1.norm.loc", "1.norm.logs", "3.weight", "4.norm.loc", "4.norm.logs",
                                 "6.logs", "6.conv.weight", "6.conv.bias"});

  manual_seed(6);
  auto net = flows::glow_coupling_net<double>(2, 4, 6);
  auto& zero = dynamic_cast<nn::ZeroConv2d<double>&>((*net)[4]);
  auto x = rand_tensor<double>({2, 2, 6, 6}, 61);
  CHECK(xt::amax(xt::abs(net->forward(x).value()))() == 0.0);
  perturb(zero.conv->weight, 62);
  perturb(zero.conv->bias, 63);
  perturb(zero.logs, 64);
  auto y = net->forward(x);
  CHECK(y.shape() == Shape{2, 4, 6, 6});
  CHECK(gradcheck([&](const In& t) { return net->forward(t[0]); }, {x}, net->named_parameters()));
}
