// Linear: y = x W^T + b, weight [out, in] as PyTorch, with PyTorch's default init.
#pragma once

#include <cmath>

#include "autograd/linalg.hpp"
#include "autograd/random.hpp"
#include "nn/module.hpp"

namespace flowgrad::nn {

template <class T = float>
class Linear : public Layer<T> {
 public:
  Linear(std::size_t in, std::size_t out, bool bias = true) {
    const T bound = T(1) / std::sqrt(T(in));  // kaiming_uniform(a=sqrt(5)) reduces to this
    weight = this->register_parameter("weight", uniform<T>({out, in}, -bound, bound));
    if (bias) this->bias = this->register_parameter("bias", uniform<T>({out}, -bound, bound));
  }
  Tensor<T> forward(const Tensor<T>& x) override { return linear(x, weight, bias); }

  Tensor<T> weight, bias;
};

}  // namespace flowgrad::nn
