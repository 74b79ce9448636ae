// Ops that move values around without changing them: reshape, permute, slicing,
// concatenation. Their backward moves the gradient back the same way.
#pragma once

#include "autograd/tensor.hpp"

namespace flowgrad {

template <class T> Tensor<T> reshape(const Tensor<T>& a, const Shape& shape);
// Keeps axes [0, start) and flattens the rest into one: (B, C, H, W) -> (B, C*H*W) for start=1.
template <class T> Tensor<T> flatten(const Tensor<T>& a, std::size_t start = 1);
// Output axis i is input axis perm[i] (torch.permute).
template <class T> Tensor<T> permute(const Tensor<T>& a, const std::vector<std::size_t>& perm);
template <class T> Tensor<T> transpose(const Tensor<T>& a, std::size_t i, std::size_t j);
// a[..., start:stop:step, ...] on one axis (Python's meaning; stop is clamped to the size).
template <class T>
Tensor<T> slice(const Tensor<T>& a, std::size_t axis, std::size_t start, std::size_t stop,
                std::size_t step = 1);
template <class T> Tensor<T> concat(const std::vector<Tensor<T>>& parts, std::size_t axis);
// Joins along a new axis.
template <class T> Tensor<T> stack(const std::vector<Tensor<T>>& parts, std::size_t axis);
// Splits `axis` into pieces of the given sizes (they must add up to its length).
template <class T>
std::vector<Tensor<T>> split(const Tensor<T>& a, const std::vector<std::size_t>& sizes,
                             std::size_t axis);
// n equal pieces (torch.chunk for sizes divisible by n).
template <class T> std::vector<Tensor<T>> chunk(const Tensor<T>& a, std::size_t n, std::size_t axis);

}  // namespace flowgrad
