// Parameter-free layers, so they can sit in a Sequential (and take its index slots, as in PyTorch).
#pragma once

#include "autograd/elementwise.hpp"
#include "nn/module.hpp"

namespace flowgrad::nn {

template <class T = float>
class ReLU : public Layer<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return relu(x); }
};

template <class T = float>
class Tanh : public Layer<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return tanh(x); }
};

}  // namespace flowgrad::nn
