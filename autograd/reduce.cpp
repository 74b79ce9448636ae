#include "autograd/reduce.hpp"

#include <algorithm>
#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xsort.hpp>

#include "autograd/elementwise.hpp"
#include "autograd/instantiate.hpp"
#include "autograd/kernels.hpp"

namespace flowgrad {

using xt::evaluation_strategy::immediate;

namespace {
// Checks axes against the rank; empty means all axes.
Axes resolve(const char* op, const Shape& shape, Axes axes) {
  if (axes.empty())
    for (std::size_t i = 0; i < shape.size(); ++i) axes.push_back(i);
  for (auto ax : axes)
    if (ax >= shape.size())
      throw ShapeError(std::string(op) + ": axis " + std::to_string(ax) + " out of range for shape " +
                       shape_str(shape));
  std::sort(axes.begin(), axes.end());
  return axes;
}
// The reduced shape with the reduced axes kept as 1: broadcasts against the input.
Shape kept_shape(const Shape& shape, const Axes& axes) {
  Shape s = shape;
  for (auto ax : axes) s[ax] = 1;
  return s;
}
Shape reduced_shape(const Shape& shape, const Axes& axes, bool keepdims) {
  if (keepdims) return kept_shape(shape, axes);
  Shape s;
  for (std::size_t i = 0; i < shape.size(); ++i)
    if (!std::binary_search(axes.begin(), axes.end(), i)) s.push_back(shape[i]);
  return s;
}
template <class T>
xt::xarray<T> reshaped(xt::xarray<T> a, const Shape& s) {
  a.reshape(s);
  return a;
}
}  // namespace

template <class T>
Tensor<T> sum(const Tensor<T>& a, Axes axes, bool keepdims) {
  const Shape in = a.shape();
  axes = resolve("sum", in, axes);
  const Shape kept = kept_shape(in, axes);
  xt::xarray<T> y = reshaped<T>(kernels::sum_to(a.value(), kept), reduced_shape(in, axes, keepdims));
  return record<T>("sum", std::move(y), {a}, [da = sink(a), kept, in](auto& g, const auto&) {
    g.reshape(kept);
    da.accumulate_grad(kernels::broadcast_to(g, in));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> mean(const Tensor<T>& a, Axes axes, bool keepdims) {
  const Shape in = a.shape();
  axes = resolve("mean", in, axes);
  std::size_t n = 1;
  for (auto ax : axes) n *= in[ax];
  return mul(sum(a, axes, keepdims), T(1) / T(n));
}

template <class T>
Tensor<T> max(const Tensor<T>& a, Axes axes, bool keepdims) {
  const Shape in = a.shape();
  axes = resolve("max", in, axes);
  const Shape kept = kept_shape(in, axes);
  xt::xarray<T> m = reshaped<T>(xt::amax(a.value(), axes, immediate), kept);
  xt::xarray<T> y = reshaped<T>(m, reduced_shape(in, axes, keepdims));
  return record<T>("max", std::move(y), {a}, [a, m, kept, axes](const auto& g, const auto&) {
    xt::xarray<T> is_max = xt::cast<T>(xt::equal(a.value(), m));
    xt::xarray<T> ties = reshaped<T>(xt::sum(is_max, axes, immediate), kept);
    a.accumulate_grad(is_max * (reshaped<T>(g, kept) / ties));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> logsumexp(const Tensor<T>& a, Axes axes, bool keepdims) {
  const Shape in = a.shape();
  axes = resolve("logsumexp", in, axes);
  const Shape kept = kept_shape(in, axes);
  xt::xarray<T> m = reshaped<T>(xt::amax(a.value(), axes, immediate), kept);
  m = xt::where(xt::isfinite(m), m, T(0));
  xt::xarray<T> e = xt::exp(a.value() - m);
  xt::xarray<T> lse = reshaped<T>(xt::sum(e, axes, immediate), kept);
  lse = xt::log(lse) + m;
  xt::xarray<T> y = reshaped<T>(lse, reduced_shape(in, axes, keepdims));
  return record<T>("logsumexp", std::move(y), {a}, [a, lse, kept](const auto& g, const auto&) {
    a.accumulate_grad(xt::exp(a.value() - lse) * reshaped<T>(g, kept));
  }, OutputUse::Unread);
}

#define FLOWGRAD_REDUCE(T)                                    \
  template Tensor<T> sum(const Tensor<T>&, Axes, bool);       \
  template Tensor<T> mean(const Tensor<T>&, Axes, bool);      \
  template Tensor<T> max(const Tensor<T>&, Axes, bool);       \
  template Tensor<T> logsumexp(const Tensor<T>&, Axes, bool);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_REDUCE)

}  // namespace flowgrad
