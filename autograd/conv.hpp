// 2-D convolution (cross-correlation, as PyTorch's conv2d), NCHW.
#pragma once

#include <cstddef>

#include "autograd/tensor.hpp"

namespace flowgrad {

// x (N, C, H, W), weight (O, C, kh, kw) as PyTorch, optional bias (O,); zero padding on
// all four sides. Output (N, O, (H + 2p - kh) / stride + 1, (W + 2p - kw) / stride + 1).
// im2col + one GEMM per image, images spread over parallel_for; a 1x1 stride-1 unpadded
// conv is a GEMM on the input itself; a 3x3 stride-1 padding-1 conv with 16 or more
// channels in and out uses Winograd's F(4x4, 3x3) on images 16 or more wide, else
// F(2x2, 3x3) (4x, 2.25x fewer multiply-adds). Other stride-1 convs with fewer output
// than input channels multiply by the weight first, then add each tap's products shifted
// (no im2col; the same values up to rounding).
template <class T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {},
                 std::size_t stride = 1, std::size_t padding = 0);

// fastest: Winograd where it applies (the default); winograd_2x2: F(2x2, 3x3) where
// Winograd applies (as accurate as im2col in float32; F(4x4, 3x3) is ~10x less, ~5e-6);
// im2col: always im2col + GEMM. Process-wide; a conv's backward uses its forward's choice.
enum class ConvAlgorithm { fastest, winograd_2x2, im2col };
void set_conv_algorithm(ConvAlgorithm algorithm);
ConvAlgorithm conv_algorithm();

}  // namespace flowgrad
