// Module naming, Linear/Sequential, gradcheck of a module's parameters.
#include <doctest/doctest.h>

#include "autograd/autograd.hpp"
#include "autograd/gradcheck.hpp"
#include "nn/activation.hpp"
#include "nn/linear.hpp"
#include "nn/sequential.hpp"

using namespace flowgrad;
using In = std::vector<Tensor<double>>;

namespace {
template <class T>
std::shared_ptr<nn::Sequential<T>> mlp(std::size_t in, std::size_t hidden, std::size_t out) {
  auto net = std::make_shared<nn::Sequential<T>>();
  net->push_back(std::make_shared<nn::Linear<T>>(in, hidden));
  net->push_back(std::make_shared<nn::ReLU<T>>());
  net->push_back(std::make_shared<nn::Linear<T>>(hidden, out));
  return net;
}

struct Twin : nn::Module<double> {
  Twin() {
    scale = register_parameter("scale", xt::xarray<double>{1.0});
    nets = register_module("nets", std::make_shared<nn::Sequential<double>>());
    nets->push_back(mlp<double>(2, 3, 2));
    nets->push_back(mlp<double>(2, 3, 2));
    register_buffer("mask", xt::xarray<double>{1.0, 0.0});
  }
  Tensor<double> scale;
  std::shared_ptr<nn::Sequential<double>> nets;
};
}  // namespace

TEST_CASE("parameter names follow PyTorch's state_dict") {
  Twin m;
  std::vector<std::string> names;
  for (auto& [name, t] : m.state()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"scale", "nets.0.0.weight", "nets.0.0.bias", "nets.0.2.weight",
                                          "nets.0.2.bias", "nets.1.0.weight", "nets.1.0.bias",
                                          "nets.1.2.weight", "nets.1.2.bias", "mask"});
  CHECK(m.parameter_count() == 1 + 2 * (2 * 3 + 3 + 3 * 2 + 2));
  CHECK(m.named_parameters()[1].second.shape() == Shape{3, 2});  // Linear weight is [out, in]
}

TEST_CASE("Linear's default init is PyTorch's U(-1/sqrt(in), 1/sqrt(in))") {
  nn::Linear<float> l(400, 300);
  const float bound = 1.f / 20.f;
  CHECK(xt::amax(l.weight.value())() <= bound);
  CHECK(xt::amin(l.weight.value())() >= -bound);
  CHECK(xt::amax(l.weight.value())() > 0.95f * bound);
  CHECK(xt::amax(l.bias.value())() <= bound);
}

TEST_CASE("gradcheck of a module: inputs and every parameter") {
  auto net = mlp<double>(3, 5, 2);
  Tensor<double> x(normal<double>({4, 3}));
  CHECK(gradcheck([&](const In& in) { return tanh(net->forward(in[0])); }, {x}, net->named_parameters()));
}
