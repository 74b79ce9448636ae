// Matrix products, through BLAS.
#pragma once

#include "autograd/tensor.hpp"

namespace flowgrad {

// (m,k)@(k,n) -> (m,n); batched (B,m,k)@(B,k,n) -> (B,m,n); (B,m,k)@(k,n) shares b.
template <class T> Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b);

// x (N,in), weight (out,in) as PyTorch's Linear, optional bias (out): x W^T + b in one GEMM.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {});

}  // namespace flowgrad
