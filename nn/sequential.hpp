// Sequential: layers applied in order, named "0", "1", ... like torch.nn.Sequential.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace flowgrad::nn {

template <class T = float>
class Sequential : public Layer<T> {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Layer<T>>> layers) {
    for (auto& l : layers) push_back(std::move(l));
  }
  template <class L>
  std::shared_ptr<L> push_back(std::shared_ptr<L> layer) {
    layers_.push_back(layer);
    return this->register_module(std::to_string(layers_.size() - 1), layer);
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    Tensor<T> h = x;
    for (auto& l : layers_) h = l->forward(h);
    return h;
  }
  std::size_t size() const { return layers_.size(); }
  Layer<T>& operator[](std::size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Layer<T>>> layers_;
};

}  // namespace flowgrad::nn
