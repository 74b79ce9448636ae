#include "flows/squeeze.hpp"

#include "autograd/instantiate.hpp"
#include "autograd/shape.hpp"

namespace flowgrad::flows {

template <class T>
Tensor<T> squeeze2x2(const Tensor<T>& x) {
  const Shape s = x.shape();
  if (s.size() != 4 || s[2] % 2 || s[3] % 2)
    throw ShapeError("squeeze: needs (B, C, H, W) with even H and W, got " + shape_str(s));
  const std::size_t b = s[0], c = s[1], h = s[2], w = s[3];
  auto v = reshape(x, {b, c, h / 2, 2, w / 2, 2});
  return reshape(permute(v, {0, 1, 3, 5, 2, 4}), {b, c * 4, h / 2, w / 2});
}

template <class T>
Tensor<T> unsqueeze2x2(const Tensor<T>& y) {
  const Shape s = y.shape();
  if (s.size() != 4 || s[1] % 4)
    throw ShapeError("unsqueeze: needs (B, 4C, H, W), got " + shape_str(s));
  const std::size_t b = s[0], c = s[1] / 4, h = s[2], w = s[3];
  auto v = reshape(y, {b, c, 2, 2, h, w});  // (b, c, dy, dx, i, j)
  return reshape(permute(v, {0, 1, 4, 2, 5, 3}), {b, c, h * 2, w * 2});
}

template <class T>
FlowResult<T> Squeeze<T>::forward(const Tensor<T>& x) {
  return {squeeze2x2(x), zero_logdet<T>(x.shape()[0])};
}

template <class T>
FlowResult<T> Squeeze<T>::inverse(const Tensor<T>& y) {
  return {unsqueeze2x2(y), zero_logdet<T>(y.shape().at(0))};
}

#define FLOWGRAD_SQUEEZE(T)                              \
  template Tensor<T> squeeze2x2(const Tensor<T>&);       \
  template Tensor<T> unsqueeze2x2(const Tensor<T>&);     \
  template class Squeeze<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_SQUEEZE)

}  // namespace flowgrad::flows
