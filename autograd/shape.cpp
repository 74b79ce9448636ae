#include "autograd/shape.hpp"

#include <numeric>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xstrided_view.hpp>

#include "autograd/instantiate.hpp"

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
// A view selecting [start, stop) with step on one axis and everything on the others.
xt::xstrided_slice_vector axis_range(std::size_t ndim, std::size_t axis, std::size_t start,
                                     std::size_t stop, std::size_t step = 1) {
  xt::xstrided_slice_vector sv(ndim, xt::all());
  sv[axis] = xt::range(start, stop, step);
  return sv;
}
}  // namespace

template <class T>
Tensor<T> reshape(const Tensor<T>& a, const Shape& shape) {
  if (numel(shape) != a.size())
    throw ShapeError("reshape: cannot reshape " + shape_str(a.shape()) + " to " + shape_str(shape));
  xt::xarray<T> y = a.value();
  y.reshape(shape);
  const Shape in = a.shape();
  return record<T>("reshape", std::move(y), {a}, [a, in](const auto& g, const auto&) {
    xt::xarray<T> gi = g;
    gi.reshape(in);
    a.accumulate_grad(std::move(gi));
  });
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
  return record<T>("permute", std::move(y), {a}, [a, inverse](const auto& g, const auto&) {
    a.accumulate_grad(xt::transpose(g, inverse));
  });
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
  const auto sv = axis_range(in.size(), axis, start, stop, step);
  xt::xarray<T> y = xt::strided_view(a.value(), sv);
  return record<T>("slice", std::move(y), {a}, [a, in, sv](const auto& g, const auto&) {
    xt::xarray<T> gi = xt::zeros<T>(in);
    xt::strided_view(gi, sv) = g;
    a.accumulate_grad(std::move(gi));
  });
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
  xt::xarray<T> y = xt::xarray<T>::from_shape(out);
  std::vector<xt::xstrided_slice_vector> where;
  std::size_t offset = 0;
  for (const auto& p : parts) {
    const std::size_t n = p.shape()[axis];
    where.push_back(axis_range(out.size(), axis, offset, offset + n));
    xt::strided_view(y, where.back()) = p.value();
    offset += n;
  }
  return record<T>("concat", std::move(y), parts, [parts, where](const auto& g, const auto&) {
    for (std::size_t i = 0; i < parts.size(); ++i)
      if (parts[i].requires_grad()) parts[i].accumulate_grad(xt::strided_view(g, where[i]));
  });
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
