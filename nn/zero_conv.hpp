// ZeroConv2d: Glow's zero-initialised output conv, conv3x3(x) * exp(3 * logs), so a
// coupling starts as the identity; as the reference's ZeroConv (names conv.*, logs).
#pragma once

#include <memory>

#include <xtensor/xbuilder.hpp>

#include "autograd/elementwise.hpp"
#include "nn/conv2d.hpp"

namespace flowgrad::nn {

template <class T = float>
class ZeroConv2d : public Layer<T> {
 public:
  ZeroConv2d(std::size_t in, std::size_t out) {
    logs = this->register_parameter("logs", xt::zeros<T>({std::size_t(1), out, std::size_t(1), std::size_t(1)}));
    conv = this->register_module("conv", std::make_shared<Conv2d<T>>(in, out, 3, 3, 1, 1));
    conv->weight.value().fill(T(0));
    conv->bias.value().fill(T(0));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    return mul(conv->forward(x), exp(mul(logs, T(3))));
  }

  std::shared_ptr<Conv2d<T>> conv;
  Tensor<T> logs;
};

}  // namespace flowgrad::nn
