// Flow: an invertible module that also reports log|det| of its Jacobian, per example.
//
//   forward(x) -> {y, logdet}   data -> latent, logdet = log|det dy/dx|, shape (B,)
//   inverse(y) -> {x, logdet}   latent -> data, logdet = log|det dx/dy| = -forward's
//
// FlowSequence chains flows and sums their logdets; its children are named "0", "1", ...
// like a torch.nn.ModuleList, so state_dict names match PyTorch's.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "autograd/elementwise.hpp"
#include "autograd/reduce.hpp"
#include "autograd/tensor.hpp"
#include "nn/module.hpp"

namespace flowgrad::flows {

template <class T>
struct FlowResult {
  Tensor<T> y;       // the mapped tensor
  Tensor<T> logdet;  // (B,)
  // So gradcheck can take a flow's result as its outputs.
  operator std::vector<Tensor<T>>() const { return {y, logdet}; }
};

// A constant zero logdet for a batch of b (volume-preserving layers).
template <class T>
Tensor<T> zero_logdet(std::size_t batch) {
  return Tensor<T>(xt::zeros<T>({batch}));
}

// The same scalar logdet for every example (ActNorm, 1x1 conv): (B,), gradient summed back.
template <class T>
Tensor<T> per_example(const Tensor<T>& scalar, std::size_t batch) {
  return add(zero_logdet<T>(batch), scalar);
}

// Sum over every axis but the batch axis: (B, ...) -> (B,).
template <class T>
Tensor<T> sum_per_example(const Tensor<T>& a) {
  if (a.dim() < 2) return a;
  Axes axes;
  for (std::size_t i = 1; i < a.dim(); ++i) axes.push_back(i);
  return sum(a, axes);
}

// Number of values per example (1 for a rank-1 batch).
inline std::size_t per_example_size(const Shape& s) {
  std::size_t n = 1;
  for (std::size_t i = 1; i < s.size(); ++i) n *= s[i];
  return n;
}

template <class T = float>
class Flow : public nn::Module<T> {
 public:
  virtual FlowResult<T> forward(const Tensor<T>& x) = 0;
  virtual FlowResult<T> inverse(const Tensor<T>& y) = 0;
  FlowResult<T> operator()(const Tensor<T>& x) { return forward(x); }
};

template <class T = float>
class FlowSequence : public Flow<T> {
 public:
  FlowSequence() = default;
  explicit FlowSequence(std::vector<std::shared_ptr<Flow<T>>> flows) {
    for (auto& f : flows) push_back(std::move(f));
  }
  template <class F>
  std::shared_ptr<F> push_back(std::shared_ptr<F> flow) {
    flows_.push_back(flow);
    return this->register_module(std::to_string(flows_.size() - 1), flow);
  }

  FlowResult<T> forward(const Tensor<T>& x) override {
    Tensor<T> h = x, logdet;
    for (auto& f : flows_) {
      auto r = f->forward(h);
      h = r.y;
      logdet = logdet.defined() ? logdet + r.logdet : r.logdet;
    }
    return {h, logdet.defined() ? logdet : zero_logdet<T>(x.shape().at(0))};
  }

  FlowResult<T> inverse(const Tensor<T>& y) override {
    Tensor<T> h = y, logdet;
    for (auto it = flows_.rbegin(); it != flows_.rend(); ++it) {
      auto r = (*it)->inverse(h);
      h = r.y;
      logdet = logdet.defined() ? logdet + r.logdet : r.logdet;
    }
    return {h, logdet.defined() ? logdet : zero_logdet<T>(y.shape().at(0))};
  }

  std::size_t size() const { return flows_.size(); }
  Flow<T>& operator[](std::size_t i) { return *flows_.at(i); }

 private:
  std::vector<std::shared_ptr<Flow<T>>> flows_;
};

}  // namespace flowgrad::flows
