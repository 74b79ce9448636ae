// Elementwise ops. Binary ops broadcast like numpy; their backward sums the gradient
// back to each input's shape (sum_to_shape).
#pragma once

#include "autograd/tensor.hpp"

namespace flowgrad {

// Sum g over the axes that broadcasting added or stretched, giving an array of `shape`.
template <class T>
xt::xarray<T> sum_to_shape(const xt::xarray<T>& g, const Shape& shape);

template <class T> Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b);
template <class T> Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b);
template <class T> Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b);
template <class T> Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b);

template <class T> Tensor<T> add(const Tensor<T>& a, ScalarArg<T> b);
template <class T> Tensor<T> mul(const Tensor<T>& a, ScalarArg<T> b);
template <class T> Tensor<T> rsub(ScalarArg<T> a, const Tensor<T>& b);  // a - b
template <class T> Tensor<T> rdiv(ScalarArg<T> a, const Tensor<T>& b);  // a / b
// a * mask for a constant array (broadcast like mul); no gradient flows to the mask.
template <class T> Tensor<T> mul(const Tensor<T>& a, const xt::xarray<T>& mask);

template <class T> Tensor<T> neg(const Tensor<T>& a);
template <class T> Tensor<T> exp(const Tensor<T>& a);
template <class T> Tensor<T> log(const Tensor<T>& a);
template <class T> Tensor<T> sqrt(const Tensor<T>& a);
template <class T> Tensor<T> pow(const Tensor<T>& a, ScalarArg<T> exponent);
template <class T> Tensor<T> abs(const Tensor<T>& a);
template <class T> Tensor<T> tanh(const Tensor<T>& a);
template <class T> Tensor<T> sigmoid(const Tensor<T>& a);
template <class T> Tensor<T> softplus(const Tensor<T>& a);     // log(1 + e^x), stable
template <class T> Tensor<T> log_sigmoid(const Tensor<T>& a);  // -softplus(-x), stable
template <class T> Tensor<T> relu(const Tensor<T>& a);
template <class T> Tensor<T> clamp(const Tensor<T>& a, ScalarArg<T> lo, ScalarArg<T> hi);

// Operators, so formulas read like formulas; a scalar of any arithmetic type mixes in.
template <class T> Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) { return add(a, b); }
template <class T> Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) { return sub(a, b); }
template <class T> Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) { return mul(a, b); }
template <class T> Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) { return div(a, b); }
template <class T> Tensor<T> operator-(const Tensor<T>& a) { return neg(a); }
template <class T> Tensor<T> operator+(const Tensor<T>& a, ScalarArg<T> b) { return add(a, b); }
template <class T> Tensor<T> operator+(ScalarArg<T> a, const Tensor<T>& b) { return add(b, a); }
template <class T> Tensor<T> operator-(const Tensor<T>& a, ScalarArg<T> b) { return add(a, -b); }
template <class T> Tensor<T> operator-(ScalarArg<T> a, const Tensor<T>& b) { return rsub(a, b); }
template <class T> Tensor<T> operator*(const Tensor<T>& a, ScalarArg<T> b) { return mul(a, b); }
template <class T> Tensor<T> operator*(ScalarArg<T> a, const Tensor<T>& b) { return mul(b, a); }
template <class T> Tensor<T> operator/(const Tensor<T>& a, ScalarArg<T> b) { return mul(a, T(1) / b); }
template <class T> Tensor<T> operator/(ScalarArg<T> a, const Tensor<T>& b) { return rdiv(a, b); }

}  // namespace flowgrad
