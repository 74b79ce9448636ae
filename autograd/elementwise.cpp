#include "autograd/elementwise.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include "autograd/instantiate.hpp"
#include "autograd/kernels.hpp"

namespace flowgrad {

template <class T>
xt::xarray<T> sum_to_shape(const xt::xarray<T>& g, const Shape& shape) {
  if (to_shape(g.shape()) == shape) return g;
  return kernels::sum_to(g, shape);
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

// The gradient that flows to an input of shape `in` from g: g itself when nothing was
// broadcast (moved out of g when this is its last use), else g summed down to `in`.
template <class T>
xt::xarray<T> reduced(xt::xarray<T>& g, const Shape& in, bool last_use) {
  if (to_shape(g.shape()) != in) return kernels::sum_to(g, in);
  if (last_use) return std::move(g);
  return kernels::map(g, [](T v) { return v; });  // a copy on every thread (a residual's skip)
}

using kernels::kGrainLibm;

// d/d(input) of f(g, other) summed down to the input's shape: fused when `other` has
// the gradient's shape (no temporary of the full size), else through a broadcast copy.
// g[i] = f(g[i], x[i]) in place, and g itself becomes the input's gradient: the engine
// drops g after the closure anyway, so its buffer is reused instead of allocating another.
template <class T, class F>
xt::xarray<T> into_grad(xt::xarray<T>& g, const xt::xarray<T>& x, F f,
                        std::size_t grain = kernels::kGrain) {
  kernels::update(g, x, f, grain);
  return std::move(g);
}

template <class T, class F>
xt::xarray<T> reduced_product(const xt::xarray<T>& g, const xt::xarray<T>& other, const Shape& in, F f) {
  const Shape gs = to_shape(g.shape());
  if (to_shape(other.shape()) == gs) {
    if (gs == in) return kernels::zip(g, other, f);
    return kernels::reduce_to(g, other, in, f);
  }
  if (gs == in) return kernels::broadcast_zip(g, other, gs, f);
  return kernels::reduce_to(g, kernels::broadcast_to(other, gs), in, f);
}
}  // namespace

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  const Shape out = broadcast_shape("add", a.shape(), b.shape());
  return record<T>("add", kernels::broadcast_zip(a.value(), b.value(), out, std::plus<T>()), {a, b},
                   [da = sink(a), db = sink(b), sa = a.shape(), sb = b.shape()](auto& g, const auto&) {
    const bool ga = da.requires_grad(), gb = db.requires_grad();
    if (ga) da.accumulate_grad(reduced(g, sa, !gb));
    if (gb) db.accumulate_grad(reduced(g, sb, true));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  const Shape out = broadcast_shape("sub", a.shape(), b.shape());
  return record<T>("sub", kernels::broadcast_zip(a.value(), b.value(), out, std::minus<T>()), {a, b},
                   [da = sink(a), db = sink(b), sa = a.shape(), sb = b.shape()](auto& g, const auto&) {
    if (da.requires_grad()) da.accumulate_grad(reduced(g, sa, !db.requires_grad()));
    if (db.requires_grad()) {
      xt::xarray<T> gb = reduced(g, sb, true);
      kernels::update(gb, gb, [](T v, T) { return -v; });
      db.accumulate_grad(std::move(gb));
    }
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  const Shape out = broadcast_shape("mul", a.shape(), b.shape());
  return record<T>("mul", kernels::broadcast_zip(a.value(), b.value(), out, std::multiplies<T>()), {a, b},
                   [a, b](auto& g, const auto&) {
    auto times = [](T gv, T v) { return gv * v; };
    if (a.requires_grad()) a.accumulate_grad(reduced_product(g, b.value(), a.shape(), times));
    if (b.requires_grad()) b.accumulate_grad(reduced_product(g, a.value(), b.shape(), times));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b) {
  const Shape out = broadcast_shape("div", a.shape(), b.shape());
  return record<T>("div", kernels::broadcast_zip(a.value(), b.value(), out, std::divides<T>()), {a, b},
                   [da = sink(a), sa = a.shape(), b](auto& g, const auto& y) {
    if (da.requires_grad())
      da.accumulate_grad(reduced_product(g, b.value(), sa, [](T gv, T bv) { return gv / bv; }));
    if (b.requires_grad()) {  // d(a/b)/db = -y / b
      const xt::xarray<T> gy = into_grad(g, y, [](T gv, T yv) { return -gv * yv; });
      b.accumulate_grad(reduced_product(gy, b.value(), b.shape(), [](T v, T bv) { return v / bv; }));
    }
  });
}

template <class T>
Tensor<T> add(const Tensor<T>& a, ScalarArg<T> b) {
  return record<T>("add_scalar", kernels::map(a.value(), [b](T v) { return v + b; }), {a},
                   [da = sink(a)](auto& g, const auto&) { da.accumulate_grad(std::move(g)); }, OutputUse::Unread);
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, ScalarArg<T> b) {
  return record<T>("mul_scalar", kernels::map(a.value(), [b](T v) { return v * b; }), {a},
                   [da = sink(a), b](auto& g, const auto&) {
    da.accumulate_grad(into_grad(g, g, [b](T v, T) { return v * b; }));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> rsub(ScalarArg<T> a, const Tensor<T>& b) {
  return record<T>("rsub_scalar", kernels::map(b.value(), [a](T v) { return a - v; }), {b},
                   [db = sink(b)](auto& g, const auto&) {
    db.accumulate_grad(into_grad(g, g, [](T v, T) { return -v; }));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> rdiv(ScalarArg<T> a, const Tensor<T>& b) {
  return record<T>("rdiv_scalar", kernels::map(b.value(), [a](T v) { return a / v; }), {b},
                   [b](auto& g, const auto& y) {  // d(a/b)/db = -y / b
    const xt::xarray<T> gy = into_grad(g, y, [](T gv, T yv) { return -gv * yv; });
    b.accumulate_grad(kernels::zip(gy, b.value(), [](T v, T bv) { return v / bv; }));
  });
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const xt::xarray<T>& mask) {
  const Shape out = broadcast_shape("mul_mask", a.shape(), to_shape(mask.shape()));
  if (out != a.shape())
    throw ShapeError("mul_mask: mask of shape " + shape_str(to_shape(mask.shape())) +
                     " would change the shape " + shape_str(a.shape()));
  auto times = std::multiplies<T>();
  return record<T>("mul_mask", kernels::broadcast_zip(a.value(), mask, out, times), {a},
                   [da = sink(a), mask, out, times](auto& g, const auto&) {
    da.accumulate_grad(kernels::broadcast_zip(g, mask, out, times));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> neg(const Tensor<T>& a) {
  return record<T>("neg", kernels::map(a.value(), [](T v) { return -v; }), {a},
                   [da = sink(a)](auto& g, const auto&) {
    da.accumulate_grad(into_grad(g, g, [](T v, T) { return -v; }));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> exp(const Tensor<T>& a) {
  return record<T>("exp", kernels::map(a.value(), [](T v) { return std::exp(v); }, kGrainLibm), {a},
                   [da = sink(a)](auto& g, const auto& y) {
    da.accumulate_grad(into_grad(g, y, std::multiplies<T>()));
  });
}

template <class T>
Tensor<T> log(const Tensor<T>& a) {
  return record<T>("log", kernels::map(a.value(), [](T v) { return std::log(v); }, kGrainLibm), {a},
                   [a](auto& g, const auto&) {
    a.accumulate_grad(into_grad(g, a.value(), std::divides<T>()));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> sqrt(const Tensor<T>& a) {
  return record<T>("sqrt", kernels::map(a.value(), [](T v) { return std::sqrt(v); }), {a},
                   [da = sink(a)](auto& g, const auto& y) {
    da.accumulate_grad(into_grad(g, y, [](T gv, T yv) { return gv / (T(2) * yv); }));
  });
}

template <class T>
Tensor<T> pow(const Tensor<T>& a, ScalarArg<T> p) {
  return record<T>("pow", kernels::map(a.value(), [p](T v) { return std::pow(v, p); }, kGrainLibm), {a},
                   [a, p](auto& g, const auto&) {
    a.accumulate_grad(into_grad(g, a.value(), [p](T gv, T v) { return gv * p * std::pow(v, p - T(1)); },
                                kGrainLibm));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> abs(const Tensor<T>& a) {
  return record<T>("abs", kernels::map(a.value(), [](T v) { return std::abs(v); }), {a},
                   [a](auto& g, const auto&) {
    a.accumulate_grad(into_grad(g, a.value(), [](T gv, T v) {
      return v > T(0) ? gv : v < T(0) ? -gv : T(0);  // g * sign(x)
    }));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> tanh(const Tensor<T>& a) {
  return record<T>("tanh", kernels::map(a.value(), [](T v) { return std::tanh(v); }, kGrainLibm), {a},
                   [da = sink(a)](auto& g, const auto& y) {
    da.accumulate_grad(into_grad(g, y, [](T gv, T yv) { return gv * (T(1) - yv * yv); }));
  });
}

template <class T>
Tensor<T> sigmoid(const Tensor<T>& a) {
  return record<T>("sigmoid",
                   kernels::map(a.value(), [](T v) { return T(1) / (T(1) + std::exp(-v)); }, kGrainLibm), {a},
                   [da = sink(a)](auto& g, const auto& y) {
    da.accumulate_grad(into_grad(g, y, [](T gv, T yv) { return gv * yv * (T(1) - yv); }));
  });
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|.
template <class T>
Tensor<T> softplus(const Tensor<T>& a) {
  return record<T>("softplus", kernels::map(a.value(), [](T v) {
                     return std::max(v, T(0)) + std::log1p(std::exp(-std::abs(v)));
                   }, kGrainLibm), {a},
                   [a](auto& g, const auto&) {  // sigmoid(x)
    a.accumulate_grad(into_grad(g, a.value(), [](T gv, T v) { return gv / (T(1) + std::exp(-v)); },
                                kGrainLibm));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> log_sigmoid(const Tensor<T>& a) {
  return record<T>("log_sigmoid", kernels::map(a.value(), [](T v) {
                     return std::min(v, T(0)) - std::log1p(std::exp(-std::abs(v)));
                   }, kGrainLibm), {a},
                   [a](auto& g, const auto&) {  // sigmoid(-x)
    a.accumulate_grad(into_grad(g, a.value(), [](T gv, T v) { return gv / (T(1) + std::exp(v)); },
                                kGrainLibm));
  }, OutputUse::Unread);
}

// NaN stays NaN, as in PyTorch. The backward reads the output (y > 0 exactly where
// x > 0), as PyTorch's does.
template <class T>
Tensor<T> relu(const Tensor<T>& a) {
  return record<T>("relu", kernels::map(a.value(), [](T v) { return v < T(0) ? T(0) : v; }), {a},
                   [da = sink(a)](auto& g, const auto& y) {
    da.accumulate_grad(into_grad(g, y, [](T gv, T yv) { return yv > T(0) ? gv : T(0); }));
  });
}

template <class T>
Tensor<T> clamp(const Tensor<T>& a, ScalarArg<T> lo, ScalarArg<T> hi) {
  return record<T>("clamp", kernels::map(a.value(), [lo, hi](T v) { return std::min(std::max(v, lo), hi); }), {a},
                   [a, lo, hi](auto& g, const auto&) {
    a.accumulate_grad(into_grad(g, a.value(), [lo, hi](T gv, T v) {
      return v >= lo && v <= hi ? gv : T(0);
    }));
  }, OutputUse::Unread);
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
