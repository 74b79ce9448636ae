#include "flows/invconv.hpp"

#include <cmath>

#include "autograd/conv.hpp"
#include "autograd/instantiate.hpp"
#include "autograd/linalg.hpp"
#include "autograd/shape.hpp"
#include "flows/linalg.hpp"

namespace flowgrad::flows {

namespace {
void check_input(const char* op, const Shape& s, std::size_t c) {
  if ((s.size() != 2 && s.size() != 4) || s[1] != c)
    throw ShapeError(std::string(op) + ": expected (B, " + std::to_string(c) + ") or (B, " +
                     std::to_string(c) + ", H, W), got " + shape_str(s));
}
template <class T>
T pixels(const Shape& s) {
  return s.size() == 4 ? T(s[2] * s[3]) : T(1);
}
}  // namespace

template <class T>
Tensor<T> mix_channels(const Tensor<T>& x, const Tensor<T>& w) {
  const Shape s = x.shape(), ws = w.shape();
  if (ws.size() != 2 || s.size() < 2 || s[1] != ws[1])
    throw ShapeError("mix_channels: input " + shape_str(s) + " and matrix " + shape_str(ws) +
                     " do not fit");
  if (s.size() == 2) return linear(x, w);  // x W^T: row b is W x_b
  if (s.size() == 4) return conv2d(x, reshape(w, {ws[0], ws[1], 1, 1}));
  throw ShapeError("mix_channels: expected a 2-d or 4-d input, got " + shape_str(s));
}

// ---------------------------------------------------------------- dense W
template <class T>
InvConv1x1<T>::InvConv1x1(std::size_t c) {
  weight = this->register_parameter("weight", xt::cast<T>(random_orthogonal(c)));
}

template <class T>
FlowResult<T> InvConv1x1<T>::forward(const Tensor<T>& x) {
  check_input("InvConv1x1::forward", x.shape(), weight.shape()[0]);
  const Shape s = x.shape();
  return {mix_channels(x, weight), per_example(logabsdet(weight) * pixels<T>(s), s[0])};
}

template <class T>
FlowResult<T> InvConv1x1<T>::inverse(const Tensor<T>& y) {
  check_input("InvConv1x1::inverse", y.shape(), weight.shape()[0]);
  const Shape s = y.shape();
  return {mix_channels(y, matrix_inverse(weight)),
          per_example(logabsdet(weight) * (-pixels<T>(s)), s[0])};
}

// ---------------------------------------------------------------- LU-parameterised W
template <class T>
InvConv1x1LU<T>::InvConv1x1LU(std::size_t c) {
  // As the reference: W0 = a random orthogonal matrix = P L U (torch.linalg.lu's convention).
  const auto w = random_orthogonal(c);
  const auto f = lu_factor(w);  // perm-rows(W0) = L U, so W0 = P L U with P = perm^T
  xt::xarray<double> lower = xt::eye<double>(c), upper = xt::zeros<double>({c, c});
  xt::xarray<double> sign = xt::zeros<double>({c}), logabs = xt::zeros<double>({c});
  xt::xarray<double> mask = xt::zeros<double>({c, c});
  for (std::size_t i = 0; i < c; ++i) {
    for (std::size_t j = 0; j < c; ++j) {
      if (j < i) lower(i, j) = f.lu(i, j), mask(i, j) = 1;
      if (j > i) upper(i, j) = f.lu(i, j);
    }
    sign(i) = f.lu(i, i) < 0 ? -1.0 : 1.0;
    logabs(i) = std::log(std::abs(f.lu(i, i)));
  }
  P = this->register_buffer("P", xt::cast<T>(xt::transpose(permutation_matrix(f.perm))));
  sign_s = this->register_buffer("sign_s", xt::cast<T>(sign));
  lmask = this->register_buffer("lmask", xt::cast<T>(mask));
  L = this->register_parameter("L", xt::cast<T>(lower));
  U = this->register_parameter("U", xt::cast<T>(upper));
  log_s = this->register_parameter("log_s", xt::cast<T>(logabs));
}

template <class T>
Tensor<T> InvConv1x1LU<T>::matrix() const {
  const std::size_t c = L.shape()[0];
  const xt::xarray<T> eye = xt::eye<T>(c);
  const xt::xarray<T> umask = xt::transpose(lmask.value());
  auto lower = mul(L, lmask.value()) + Tensor<T>(eye);
  auto diag = mul(Tensor<T>(eye), sign_s * exp(log_s));  // eye[i,j] * s[j]
  auto upper = mul(U, umask) + diag;
  return matmul(matmul(P, lower), upper);
}

template <class T>
FlowResult<T> InvConv1x1LU<T>::forward(const Tensor<T>& x) {
  check_input("InvConv1x1LU::forward", x.shape(), L.shape()[0]);
  const Shape s = x.shape();
  return {mix_channels(x, matrix()), per_example(sum(log_s) * pixels<T>(s), s[0])};
}

template <class T>
FlowResult<T> InvConv1x1LU<T>::inverse(const Tensor<T>& y) {
  check_input("InvConv1x1LU::inverse", y.shape(), L.shape()[0]);
  const Shape s = y.shape();
  return {mix_channels(y, matrix_inverse(matrix())), per_example(sum(log_s) * (-pixels<T>(s)), s[0])};
}

#define FLOWGRAD_INVCONV(T)                                          \
  template Tensor<T> mix_channels(const Tensor<T>&, const Tensor<T>&); \
  template class InvConv1x1<T>;                                      \
  template class InvConv1x1LU<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_INVCONV)

}  // namespace flowgrad::flows
