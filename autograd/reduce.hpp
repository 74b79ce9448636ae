// Reductions over given axes (all axes when `axes` is empty), like torch's sum(dim, keepdim).
#pragma once

#include "autograd/tensor.hpp"

namespace flowgrad {

using Axes = std::vector<std::size_t>;

template <class T> Tensor<T> sum(const Tensor<T>& a, Axes axes = {}, bool keepdims = false);
template <class T> Tensor<T> mean(const Tensor<T>& a, Axes axes = {}, bool keepdims = false);
// Maximum; the gradient is shared equally between tied maxima (like torch.amax).
template <class T> Tensor<T> max(const Tensor<T>& a, Axes axes = {}, bool keepdims = false);
// log(sum(exp(a))) over axes, computed without overflow.
template <class T> Tensor<T> logsumexp(const Tensor<T>& a, Axes axes = {}, bool keepdims = false);

}  // namespace flowgrad
