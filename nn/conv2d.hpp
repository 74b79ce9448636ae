// Conv2d: PyTorch's layer, weight (out, in, kh, kw), with its default init.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/conv.hpp"
#include "autograd/random.hpp"
#include "nn/module.hpp"

namespace flowgrad::nn {

template <class T = float>
class Conv2d : public Layer<T> {
 public:
  // kw = 0 means a square kernel (kw = kh).
  Conv2d(std::size_t in, std::size_t out, std::size_t kh, std::size_t kw = 0,
         std::size_t stride = 1, std::size_t padding = 0, bool bias = true)
      : stride(stride), padding(padding) {
    if (kw == 0) kw = kh;
    if (in == 0 || out == 0 || kh == 0 || stride == 0)
      throw std::invalid_argument("Conv2d: in, out, kernel and stride must be positive (got in " +
                                  std::to_string(in) + ", out " + std::to_string(out) +
                                  ", kernel " + std::to_string(kh) + "x" + std::to_string(kw) +
                                  ", stride " + std::to_string(stride) + ")");
    // kaiming_uniform(a=sqrt(5)) on the weight and PyTorch's bias init both reduce to this.
    const T bound = T(1) / std::sqrt(T(in * kh * kw));
    weight = this->register_parameter("weight", uniform<T>({out, in, kh, kw}, -bound, bound));
    if (bias) this->bias = this->register_parameter("bias", uniform<T>({out}, -bound, bound));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    return conv2d(x, weight, bias, stride, padding);
  }

  Tensor<T> weight, bias;  // bias undefined when built without one
  std::size_t stride, padding;
};

}  // namespace flowgrad::nn
