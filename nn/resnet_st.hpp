// ResNetST: Real NVP's s/t network, as the reference's ResNetST:
//   h = conv3x3(x); h = h + conv(relu(conv(relu(h)))) per block; out = conv3x3(relu(h))
// with `out` zero-initialised, so every coupling starts as the identity.
// Names: inp.*, blocks.{i}.1.*, blocks.{i}.3.* (Sequential(ReLU, Conv, ReLU, Conv)), out.*.
#pragma once

#include <memory>

#include "autograd/elementwise.hpp"
#include "nn/activation.hpp"
#include "nn/conv2d.hpp"
#include "nn/sequential.hpp"

namespace flowgrad::nn {

template <class T = float>
class ResNetST : public Layer<T> {
 public:
  // x (N, in, H, W) -> (N, 2*in, H, W): s and t stacked on the channels.
  ResNetST(std::size_t in, std::size_t mid, std::size_t num_blocks) {
    inp = this->register_module("inp", std::make_shared<Conv2d<T>>(in, mid, 3, 3, 1, 1));
    // A Sequential used only as a list (PyTorch's ModuleList): gives the names blocks.{i}.
    blocks = this->register_module("blocks", std::make_shared<Sequential<T>>());
    for (std::size_t i = 0; i < num_blocks; ++i)
      blocks->push_back(std::make_shared<Sequential<T>>(std::vector<std::shared_ptr<Layer<T>>>{
          std::make_shared<ReLU<T>>(), std::make_shared<Conv2d<T>>(mid, mid, 3, 3, 1, 1),
          std::make_shared<ReLU<T>>(), std::make_shared<Conv2d<T>>(mid, mid, 3, 3, 1, 1)}));
    out = this->register_module("out", std::make_shared<Conv2d<T>>(mid, 2 * in, 3, 3, 1, 1));
    out->weight.value().fill(T(0));
    out->bias.value().fill(T(0));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    Tensor<T> h = inp->forward(x);
    for (std::size_t i = 0; i < blocks->size(); ++i) h = add(h, (*blocks)[i].forward(h));
    return out->forward(relu(h));
  }

  std::shared_ptr<Conv2d<T>> inp, out;
  std::shared_ptr<Sequential<T>> blocks;
};

}  // namespace flowgrad::nn
