// Module: named parameters, buffers and submodules, with PyTorch's dotted state_dict names.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace flowgrad::nn {

template <class T>
using Named = std::vector<std::pair<std::string, Tensor<T>>>;

template <class T = float>
class Module {
 public:
  using Scalar = T;
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Own parameters first, then each child's under "child." — PyTorch's order and names.
  Named<T> named_parameters() const { return collect(&Module::params_); }
  Named<T> named_buffers() const { return collect(&Module::buffers_); }
  // Parameters then buffers, as in state_dict().
  Named<T> state() const {
    Named<T> all = named_parameters();
    for (auto& b : named_buffers()) all.push_back(b);
    return all;
  }
  std::vector<Tensor<T>> parameters() const {
    std::vector<Tensor<T>> out;
    for (auto& [name, p] : named_parameters()) out.push_back(p);
    return out;
  }
  std::size_t parameter_count() const {
    std::size_t n = 0;
    for (auto& [name, p] : named_parameters()) n += p.size();
    return n;
  }
  void zero_grad() {
    for (auto& p : parameters()) p.zero_grad();
  }

  void train(bool on = true) {
    training_ = on;
    for (auto& [name, c] : children_) c->train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

 protected:
  // Layers keep the returned handle as a member; the module keeps the same tensor by name,
  // so loading a state_dict updates what the layer computes with.
  Tensor<T> register_parameter(const std::string& name, xt::xarray<T> value) {
    Tensor<T> t(std::move(value), true);
    params_.emplace_back(name, t);
    return t;
  }
  Tensor<T> register_buffer(const std::string& name, xt::xarray<T> value) {
    Tensor<T> t(std::move(value), false);
    buffers_.emplace_back(name, t);
    return t;
  }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  Named<T> collect(Named<T> Module::*which) const {
    Named<T> out = this->*which;
    for (auto& [cname, c] : children_)
      for (auto& [name, t] : c->collect(which)) out.emplace_back(cname + "." + name, t);
    return out;
  }

  Named<T> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A module that maps one tensor to one tensor: what Sequential chains.
template <class T = float>
class Layer : public Module<T> {
 public:
  virtual Tensor<T> forward(const Tensor<T>& x) = 0;
  Tensor<T> operator()(const Tensor<T>& x) { return forward(x); }
};

}  // namespace flowgrad::nn
