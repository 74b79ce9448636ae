// What README.md's test blocks take from the reader's own code: a layer MyLayer, a flow
// MyFlow, and `Tensor` in scope (the gradcheck block names it unqualified).
#pragma once

#include <cstddef>

#include "autograd/autograd.hpp"
#include "flows/flow.hpp"
#include "nn/module.hpp"

// y = tanh(x * w) over the last axis: one weight per feature.
template <class T>
class MyLayer : public flowgrad::nn::Layer<T> {
 public:
  explicit MyLayer(std::size_t features) {
    w = this->register_parameter("w", flowgrad::normal<T>({features}));
  }
  flowgrad::Tensor<T> forward(const flowgrad::Tensor<T>& x) override { return tanh(x * w); }
  flowgrad::Tensor<T> w;
};

// y = x * exp(s) per channel of a (B, C, H, W) batch.
template <class T>
class MyFlow : public flowgrad::flows::Flow<T> {
 public:
  explicit MyFlow(std::size_t channels) {
    s = this->register_parameter("s", xt::zeros<T>({std::size_t(1), channels, std::size_t(1), std::size_t(1)}));
  }
  flowgrad::flows::FlowResult<T> forward(const flowgrad::Tensor<T>& x) override { return scale(x, T(1)); }
  flowgrad::flows::FlowResult<T> inverse(const flowgrad::Tensor<T>& y) override { return scale(y, T(-1)); }
  flowgrad::Tensor<T> s;

 private:
  flowgrad::flows::FlowResult<T> scale(const flowgrad::Tensor<T>& x, T sign) {
    const T pixels = T(x.shape()[2] * x.shape()[3]);
    return {x * exp(s * sign), flowgrad::flows::per_example(sum(s) * (sign * pixels), x.shape()[0])};
  }
};
