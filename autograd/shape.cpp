#include "autograd/shape.hpp"

#include <algorithm>
#include <numeric>
#include <xtensor/xmanipulation.hpp>

#include "autograd/instantiate.hpp"
#include "autograd/kernels.hpp"

namespace flowgrad {

namespace {
std::size_t numel(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), std::size_t(1), std::multiplies<>());
}
void check_axis(const char* op, const Shape& s, std::size_t axis) {
  if (axis >= s.size())
    throw ShapeError(std::string(op) + ": axis " + std::to_string(axis) + " out of range for shape " +
                     shape_str(s));
}
// A row-major shape seen around one axis as (outer, len, inner): slicing and joining on
// that axis move blocks of `inner` contiguous values.
struct Blocks {
  std::size_t axis, outer = 1, len, inner = 1;
  Blocks(const Shape& s, std::size_t ax) : axis(ax), len(s[ax]) {
    for (std::size_t i = 0; i < ax; ++i) outer *= s[i];
    for (std::size_t i = ax + 1; i < s.size(); ++i) inner *= s[i];
  }
};
// fn(o, k, inner) for every outer index o and block k < n, spread over threads when big;
// `width` blocks of `inner` values are moved per call (concat moves a part's run at once).
template <class F>
void copy_blocks(const Blocks& b, std::size_t n, F&& fn, std::size_t width = 1) {
  const std::size_t per_call = width * b.inner;
  kernels::for_range(b.outer * n, [&](std::size_t lo, std::size_t hi) {
    // No division per block: NICE's strided slices move blocks of one value.
    for (std::size_t i = lo, o = lo / n, k = lo % n; i < hi; ++i) {
      fn(o, k, b.inner);
      if (++k == n) k = 0, ++o;
    }
  }, std::max<std::size_t>(1, kernels::kGrain / std::max<std::size_t>(per_call, 1)));
}
// std::copy of a run whose length is known only at run time calls memmove: for runs of
// one value (a slice with a step along the last axis) that call costs more than the copy.
template <class T>
void copy_run(const T* from, std::size_t n, T* to) {
  if (n == 1)
    *to = *from;
  else
    std::copy(from, from + n, to);
}
}  // namespace

template <class T>
Tensor<T> reshape(const Tensor<T>& a, const Shape& shape) {
  if (numel(shape) != a.size())
    throw ShapeError("reshape: cannot reshape " + shape_str(a.shape()) + " to " + shape_str(shape));
  xt::xarray<T> y = a.value();
  y.reshape(shape);
  const Shape in = a.shape();
  return record<T>("reshape", std::move(y), {a}, [da = sink(a), in](auto& g, const auto&) {
    g.reshape(in);
    da.accumulate_grad(std::move(g));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> flatten(const Tensor<T>& a, std::size_t start) {
  Shape s = a.shape();
  if (start >= s.size()) return a;
  Shape out(s.begin(), s.begin() + start);
  out.push_back(numel(Shape(s.begin() + start, s.end())));
  return reshape(a, out);
}

template <class T>
Tensor<T> permute(const Tensor<T>& a, const std::vector<std::size_t>& perm) {
  const Shape in = a.shape();
  std::vector<std::size_t> inverse(perm.size());
  std::vector<bool> used(perm.size(), false);
  if (perm.size() != in.size())
    throw ShapeError("permute: " + std::to_string(perm.size()) + " axes given for shape " + shape_str(in));
  for (std::size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] >= in.size() || used[perm[i]])
      throw ShapeError("permute: not a permutation of the axes of " + shape_str(in));
    used[perm[i]] = true;
    inverse[perm[i]] = i;
  }
  xt::xarray<T> y = xt::transpose(a.value(), perm);
  return record<T>("permute", std::move(y), {a}, [da = sink(a), inverse](const auto& g, const auto&) {
    da.accumulate_grad(xt::xarray<T>(xt::transpose(g, inverse)));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> transpose(const Tensor<T>& a, std::size_t i, std::size_t j) {
  check_axis("transpose", a.shape(), std::max(i, j));
  std::vector<std::size_t> perm(a.dim());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[i], perm[j]);
  return permute(a, perm);
}

template <class T>
Tensor<T> slice(const Tensor<T>& a, std::size_t axis, std::size_t start, std::size_t stop,
                std::size_t step) {
  const Shape in = a.shape();
  check_axis("slice", in, axis);
  if (step == 0) throw ShapeError("slice: step must be positive");
  stop = std::min(stop, in[axis]);
  start = std::min(start, stop);
  const Blocks b(in, axis);
  const std::size_t n = (stop - start + step - 1) / step;
  Shape out = in;
  out[axis] = n;
  // Block k of each outer index comes from block start + k * step.
  auto source = [=](std::size_t o, std::size_t k) { return (o * b.len + start + k * step) * b.inner; };
  xt::xarray<T> y = xt::xarray<T>::from_shape(out);
  copy_blocks(b, n, [&](std::size_t o, std::size_t k, std::size_t inner) {
    copy_run(a.value().data() + source(o, k), inner, y.data() + (o * n + k) * inner);
  });
  return record<T>("slice", std::move(y), {a}, [da = sink(a), in, b, n, source](const auto& g, const auto&) {
    xt::xarray<T> gi = xt::zeros<T>(in);
    copy_blocks(b, n, [&](std::size_t o, std::size_t k, std::size_t inner) {
      copy_run(g.data() + (o * n + k) * inner, inner, gi.data() + source(o, k));
    });
    da.accumulate_grad(std::move(gi));
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> concat(const std::vector<Tensor<T>>& parts, std::size_t axis) {
  if (parts.empty()) throw ShapeError("concat: nothing to concatenate");
  Shape out = parts[0].shape();
  check_axis("concat", out, axis);
  out[axis] = 0;
  for (const auto& p : parts) {
    Shape s = p.shape();
    Shape want = parts[0].shape();
    if (s.size() == want.size()) want[axis] = s[axis];
    if (s != want)
      throw ShapeError("concat: shapes " + shape_str(parts[0].shape()) + " and " + shape_str(s) +
                       " differ outside axis " + std::to_string(axis));
    out[axis] += s[axis];
  }
  // Part i fills blocks [offset[i], offset[i] + its length) of each outer index.
  const Blocks ob(out, axis);
  std::vector<std::size_t> offset;
  for (std::size_t i = 0, at = 0; i < parts.size(); at += parts[i].shape()[axis], ++i) offset.push_back(at);
  xt::xarray<T> y = xt::xarray<T>::from_shape(out);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const T* from = parts[i].value().data();
    const std::size_t len = parts[i].shape()[axis];
    copy_blocks(ob, 1, [&](std::size_t o, std::size_t, std::size_t inner) {
      std::copy(from + o * len * inner, from + (o + 1) * len * inner, y.data() + (o * ob.len + offset[i]) * inner);
    }, len);
  }
  std::vector<GradSink<T>> sinks;
  std::vector<Shape> shapes;
  for (const auto& p : parts) sinks.push_back(sink(p)), shapes.push_back(p.shape());
  return record<T>("concat", std::move(y), parts, [sinks, shapes, ob, offset](const auto& g, const auto&) {
    for (std::size_t i = 0; i < sinks.size(); ++i) {
      if (!sinks[i].requires_grad()) continue;
      const std::size_t len = shapes[i][ob.axis];
      xt::xarray<T> gi = xt::xarray<T>::from_shape(shapes[i]);
      copy_blocks(ob, 1, [&](std::size_t o, std::size_t, std::size_t inner) {
        const T* from = g.data() + (o * ob.len + offset[i]) * inner;
        std::copy(from, from + len * inner, gi.data() + o * len * inner);
      }, len);
      sinks[i].accumulate_grad(std::move(gi));
    }
  }, OutputUse::Unread);
}

template <class T>
Tensor<T> stack(const std::vector<Tensor<T>>& parts, std::size_t axis) {
  std::vector<Tensor<T>> expanded;
  for (const auto& p : parts) {
    Shape s = p.shape();
    if (axis > s.size()) check_axis("stack", s, axis);
    s.insert(s.begin() + axis, 1);
    expanded.push_back(reshape(p, s));
  }
  return concat(expanded, axis);
}

template <class T>
std::vector<Tensor<T>> split(const Tensor<T>& a, const std::vector<std::size_t>& sizes,
                             std::size_t axis) {
  const Shape in = a.shape();
  check_axis("split", in, axis);
  if (std::accumulate(sizes.begin(), sizes.end(), std::size_t(0)) != in[axis])
    throw ShapeError("split: sizes do not add up to axis " + std::to_string(axis) + " of " +
                     shape_str(in));
  std::vector<Tensor<T>> out;
  std::size_t offset = 0;
  for (auto n : sizes) {
    out.push_back(slice(a, axis, offset, offset + n));
    offset += n;
  }
  return out;
}

template <class T>
std::vector<Tensor<T>> chunk(const Tensor<T>& a, std::size_t n, std::size_t axis) {
  const Shape in = a.shape();
  check_axis("chunk", in, axis);
  if (n == 0 || in[axis] % n != 0)
    throw ShapeError("chunk: axis " + std::to_string(axis) + " of " + shape_str(in) +
                     " does not split into " + std::to_string(n) + " equal pieces");
  return split(a, std::vector<std::size_t>(n, in[axis] / n), axis);
}

#define FLOWGRAD_SHAPE(T)                                                                        \
  template Tensor<T> reshape(const Tensor<T>&, const Shape&);                                    \
  template Tensor<T> flatten(const Tensor<T>&, std::size_t);                                     \
  template Tensor<T> permute(const Tensor<T>&, const std::vector<std::size_t>&);                 \
  template Tensor<T> transpose(const Tensor<T>&, std::size_t, std::size_t);                      \
  template Tensor<T> slice(const Tensor<T>&, std::size_t, std::size_t, std::size_t, std::size_t); \
  template Tensor<T> concat(const std::vector<Tensor<T>>&, std::size_t);                         \
  template Tensor<T> stack(const std::vector<Tensor<T>>&, std::size_t);                          \
  template std::vector<Tensor<T>> split(const Tensor<T>&, const std::vector<std::size_t>&,       \
                                        std::size_t);                                            \
  template std::vector<Tensor<T>> chunk(const Tensor<T>&, std::size_t, std::size_t);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_SHAPE)

}  // namespace flowgrad
