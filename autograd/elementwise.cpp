#include "autograd/elementwise.hpp"

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>

#include "autograd/instantiate.hpp"

namespace flowgrad {

using xt::evaluation_strategy::immediate;

template <class T>
xt::xarray<T> sum_to_shape(const xt::xarray<T>& g, const Shape& shape) {
  const Shape gs = to_shape(g.shape());
  if (gs == shape) return g;
  // Leading axes that broadcasting added, then axes stretched from 1.
  const std::size_t lead = gs.size() - shape.size();
  std::vector<std::size_t> axes;
  for (std::size_t i = 0; i < gs.size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && gs[i] != 1)) axes.push_back(i);
  xt::xarray<T> s = xt::sum(g, axes, immediate);
  s.reshape(shape);
  return s;
}

namespace {
// numpy's rule; throws naming the op and both shapes.
Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::size_t da = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    std::size_t db = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ShapeError(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                       " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}
}  // namespace

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  broadcast_shape("add", a.shape(), b.shape());
  return record<T>("add", a.value() + b.value(), {a, b}, [a, b](const auto& g, const auto&) {
    if (a.requires_grad()) a.accumulate_grad(sum_to_shape(g, a.shape()));
    if (b.requires_grad()) b.accumulate_grad(sum_to_shape(g, b.shape()));
  });
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  broadcast_shape("sub", a.shape(), b.shape());
  return record<T>("sub", a.value() - b.value(), {a, b}, [a, b](const auto& g, const auto&) {
    if (a.requires_grad()) a.accumulate_grad(sum_to_shape(g, a.shape()));
    if (b.requires_grad()) b.accumulate_grad(-sum_to_shape(g, b.shape()));
  });
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  broadcast_shape("mul", a.shape(), b.shape());
  return record<T>("mul", a.value() * b.value(), {a, b}, [a, b](const auto& g, const auto&) {
    if (a.requires_grad()) a.accumulate_grad(sum_to_shape<T>(g * b.value(), a.shape()));
    if (b.requires_grad()) b.accumulate_grad(sum_to_shape<T>(g * a.value(), b.shape()));
  });
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  broadcast_shape("div", a.shape(), b.shape());
  return record<T>("div", a.value() / b.value(), {a, b}, [a, b](const auto& g, const auto& y) {
    if (a.requires_grad()) a.accumulate_grad(sum_to_shape<T>(g / b.value(), a.shape()));
    if (b.requires_grad()) b.accumulate_grad(sum_to_shape<T>(-g * y / b.value(), b.shape()));
  });
}

template <class T>
Tensor<T> add(const Tensor<T>& a, T b) {
  return record<T>("add_scalar", a.value() + b, {a},
                   [a](const auto& g, const auto&) { a.accumulate_grad(g); });
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, T b) {
  return record<T>("mul_scalar", a.value() * b, {a},
                   [a, b](const auto& g, const auto&) { a.accumulate_grad(g * b); });
}

template <class T>
Tensor<T> rsub(T a, const Tensor<T>& b) {
  return record<T>("rsub_scalar", a - b.value(), {b},
                   [b](const auto& g, const auto&) { b.accumulate_grad(-g); });
}

template <class T>
Tensor<T> rdiv(T a, const Tensor<T>& b) {
  return record<T>("rdiv_scalar", a / b.value(), {b}, [b](const auto& g, const auto& y) {
    b.accumulate_grad(-g * y / b.value());
  });
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const xt::xarray<T>& mask) {
  const Shape out = broadcast_shape("mul_mask", a.shape(), to_shape(mask.shape()));
  if (out != a.shape())
    throw ShapeError("mul_mask: mask of shape " + shape_str(to_shape(mask.shape())) +
                     " would change the shape " + shape_str(a.shape()));
  return record<T>("mul_mask", a.value() * mask, {a},
                   [a, mask](const auto& g, const auto&) { a.accumulate_grad(g * mask); });
}

template <class T>
Tensor<T> neg(const Tensor<T>& a) {
  return record<T>("neg", -a.value(), {a},
                   [a](const auto& g, const auto&) { a.accumulate_grad(-g); });
}

template <class T>
Tensor<T> exp(const Tensor<T>& a) {
  return record<T>("exp", xt::exp(a.value()), {a},
                   [a](const auto& g, const auto& y) { a.accumulate_grad(g * y); });
}

template <class T>
Tensor<T> log(const Tensor<T>& a) {
  return record<T>("log", xt::log(a.value()), {a},
                   [a](const auto& g, const auto&) { a.accumulate_grad(g / a.value()); });
}

template <class T>
Tensor<T> sqrt(const Tensor<T>& a) {
  return record<T>("sqrt", xt::sqrt(a.value()), {a},
                   [a](const auto& g, const auto& y) { a.accumulate_grad(g / (T(2) * y)); });
}

template <class T>
Tensor<T> pow(const Tensor<T>& a, T p) {
  return record<T>("pow", xt::pow(a.value(), p), {a}, [a, p](const auto& g, const auto&) {
    a.accumulate_grad(g * p * xt::pow(a.value(), p - T(1)));
  });
}

template <class T>
Tensor<T> abs(const Tensor<T>& a) {
  return record<T>("abs", xt::abs(a.value()), {a}, [a](const auto& g, const auto&) {
    a.accumulate_grad(g * xt::sign(a.value()));
  });
}

template <class T>
Tensor<T> tanh(const Tensor<T>& a) {
  return record<T>("tanh", xt::tanh(a.value()), {a},
                   [a](const auto& g, const auto& y) { a.accumulate_grad(g * (T(1) - y * y)); });
}

template <class T>
Tensor<T> sigmoid(const Tensor<T>& a) {
  return record<T>("sigmoid", T(1) / (T(1) + xt::exp(-a.value())), {a},
                   [a](const auto& g, const auto& y) { a.accumulate_grad(g * y * (T(1) - y)); });
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|.
template <class T>
Tensor<T> softplus(const Tensor<T>& a) {
  const auto& x = a.value();
  return record<T>("softplus", xt::maximum(x, T(0)) + xt::log1p(xt::exp(-xt::abs(x))), {a},
                   [a](const auto& g, const auto&) {
                     a.accumulate_grad(g / (T(1) + xt::exp(-a.value())));
                   });
}

template <class T>
Tensor<T> log_sigmoid(const Tensor<T>& a) {
  const auto& x = a.value();
  return record<T>("log_sigmoid", xt::minimum(x, T(0)) - xt::log1p(xt::exp(-xt::abs(x))), {a},
                   [a](const auto& g, const auto&) {
                     a.accumulate_grad(g / (T(1) + xt::exp(a.value())));
                   });
}

template <class T>
Tensor<T> relu(const Tensor<T>& a) {
  return record<T>("relu", xt::maximum(a.value(), T(0)), {a}, [a](const auto& g, const auto&) {
    a.accumulate_grad(xt::where(a.value() > T(0), g, T(0)));
  });
}

template <class T>
Tensor<T> clamp(const Tensor<T>& a, T lo, T hi) {
  return record<T>("clamp", xt::clip(a.value(), lo, hi), {a}, [a, lo, hi](const auto& g, const auto&) {
    a.accumulate_grad(xt::where(a.value() >= lo && a.value() <= hi, g, T(0)));
  });
}

#define FLOWGRAD_ELEMENTWISE(T)                                                  \
  template xt::xarray<T> sum_to_shape(const xt::xarray<T>&, const Shape&);      \
  template Tensor<T> add(const Tensor<T>&, const Tensor<T>&);                    \
  template Tensor<T> sub(const Tensor<T>&, const Tensor<T>&);                    \
  template Tensor<T> mul(const Tensor<T>&, const Tensor<T>&);                    \
  template Tensor<T> div(const Tensor<T>&, const Tensor<T>&);                    \
  template Tensor<T> add(const Tensor<T>&, T);                                   \
  template Tensor<T> mul(const Tensor<T>&, T);                                   \
  template Tensor<T> rsub(T, const Tensor<T>&);                                  \
  template Tensor<T> rdiv(T, const Tensor<T>&);                                  \
  template Tensor<T> mul(const Tensor<T>&, const xt::xarray<T>&);                \
  template Tensor<T> neg(const Tensor<T>&);                                      \
  template Tensor<T> exp(const Tensor<T>&);                                      \
  template Tensor<T> log(const Tensor<T>&);                                      \
  template Tensor<T> sqrt(const Tensor<T>&);                                     \
  template Tensor<T> pow(const Tensor<T>&, T);                                   \
  template Tensor<T> abs(const Tensor<T>&);                                      \
  template Tensor<T> tanh(const Tensor<T>&);                                     \
  template Tensor<T> sigmoid(const Tensor<T>&);                                  \
  template Tensor<T> softplus(const Tensor<T>&);                                 \
  template Tensor<T> log_sigmoid(const Tensor<T>&);                              \
  template Tensor<T> relu(const Tensor<T>&);                                     \
  template Tensor<T> clamp(const Tensor<T>&, T, T);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_ELEMENTWISE)

}  // namespace flowgrad
