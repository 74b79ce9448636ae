#include "flows/split.hpp"

#include <cmath>
#include <string>

#include "autograd/elementwise.hpp"
#include "autograd/instantiate.hpp"
#include "autograd/shape.hpp"
#include "flows/class_shift.hpp"

namespace flowgrad::flows {

template <class T>
Split<T>::Split(FactorOut which) : which_(which) {}

template <class T>
Split<T>::Split(FactorOut which, std::shared_ptr<nn::Layer<T>> p, double log_scale_cap)
    : which_(which), log_scale_cap_(log_scale_cap) {
  if (!p) throw std::invalid_argument("Split: prior network is null");
  if (!(log_scale_cap >= 0 && std::isfinite(log_scale_cap)))
    throw std::invalid_argument("Split: log_scale_cap must be finite and >= 0, got " + std::to_string(log_scale_cap));
  prior = this->register_module("prior", std::move(p));
}

template <class T>
typename Split<T>::Parts Split<T>::split(const Tensor<T>& x) const {
  const Shape s = x.shape();
  if (s.size() != 4 || s[1] % 2)
    throw ShapeError("Split: expected (B, C, H, W) with C even, got " + shape_str(s));
  auto halves = chunk(x, 2, 1);
  if (which_ == FactorOut::First) return {halves[1], halves[0]};
  return {halves[0], halves[1]};
}

template <class T>
Tensor<T> Split<T>::merge(const Tensor<T>& kept, const Tensor<T>& z) const {
  if (kept.shape() != z.shape())
    throw ShapeError("Split::merge: kept half " + shape_str(kept.shape()) + " and latent " +
                     shape_str(z.shape()) + " differ");
  if (which_ == FactorOut::First) return concat(std::vector<Tensor<T>>{z, kept}, 1);
  return concat(std::vector<Tensor<T>>{kept, z}, 1);
}

template <class T>
void Split<T>::set_class_map(std::shared_ptr<nn::Linear<T>> map) {
  if (!prior || !map) throw std::invalid_argument("Split: a class map needs a prior network (and a map)");
  class_map = this->register_module("class_map", std::move(map));
}

template <class T>
std::shared_ptr<Distribution<T>> Split<T>::prior_given(const Tensor<T>& kept, const Tensor<T>& context) {
  return prior_from(prior_features(kept), context);
}

template <class T>
Tensor<T> Split<T>::prior_features(const Tensor<T>& kept) {
  if (!prior) return Tensor<T>();
  auto h = prior->forward(kept);
  Shape want = kept.shape();
  want[1] *= 2;
  if (h.shape() != want)
    throw ShapeError("Split: prior network returned " + shape_str(h.shape()) + ", expected " +
                     shape_str(want));
  return h;
}

template <class T>
std::shared_ptr<Distribution<T>> Split<T>::prior_from(const Tensor<T>& features, const Tensor<T>& context) const {
  if (context.defined() != conditional())
    throw std::invalid_argument(conditional() ? "Split: a class-conditional prior needs the classes (a context)"
                                              : "Split: this prior is not class-conditional");
  if (!features.defined()) return std::make_shared<StandardGaussian<T>>();
  const Tensor<T> h = class_map ? features + class_shift(*class_map, context, features.shape()) : features;
  const std::size_t c = h.shape()[1];
  auto logs = slice(h, 1, 1, c, 2);
  if (log_scale_cap_ > 0) {  // logs <= 0 as it is, logs > 0 -> cap tanh(logs / cap)
    const T cap = T(log_scale_cap_);
    logs = tanh(relu(logs) * (T(1) / cap)) * cap - relu(-logs);
  }
  return std::make_shared<DiagonalGaussian<T>>(slice(h, 1, 0, c, 2), logs);
}

template <class T>
Tensor<T> Split<T>::log_prob(const Tensor<T>& kept, const Tensor<T>& z, const Tensor<T>& context) {
  if (kept.shape() != z.shape())
    throw ShapeError("Split::log_prob: kept half " + shape_str(kept.shape()) + " and latent " +
                     shape_str(z.shape()) + " differ");
  return prior_given(kept, context)->log_prob(z);
}

template <class T>
Tensor<T> Split<T>::sample(const Tensor<T>& kept, T temperature, const Tensor<T>& context) {
  return prior_given(kept, context)->sample(kept.shape(), temperature);
}

#define FLOWGRAD_SPLIT(T) template class Split<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_SPLIT)

}  // namespace flowgrad::flows
