// 2-D convolution (cross-correlation, as PyTorch's conv2d), NCHW.
#pragma once

#include <cstddef>

#include "autograd/tensor.hpp"

namespace flowgrad {

// x (N, C, H, W), weight (O, C, kh, kw) as PyTorch, optional bias (O,); zero padding on
// all four sides. Output (N, O, (H + 2p - kh) / stride + 1, (W + 2p - kw) / stride + 1).
// im2col + one GEMM per image, images spread over parallel_for; a 1x1 stride-1 unpadded
// conv is a GEMM on the input itself.
template <class T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {},
                 std::size_t stride = 1, std::size_t padding = 0);

}  // namespace flowgrad
