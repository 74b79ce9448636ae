// Invertible 1x1 convolution (Glow): y = W x at every pixel, W a C x C matrix.
// logdet = H*W * log|det W|, the same for every example.
//
// InvConv1x1:   W a dense parameter `weight` (C, C), log|det W| by an LU in float64
//               (gradient W^{-T}). Initialised to a random orthogonal matrix.
// InvConv1x1LU: W = P L (U + diag(sign_s * exp(log_s))), as the reference's InvConv1x1LU:
//               parameters L, U (full C x C, masked to strictly lower/upper in forward) and
//               log_s; buffers P, sign_s, lmask. logdet = H*W * sum(log_s), no LU needed.
// Both accept (B, C, H, W) or flat (B, C) input.
#pragma once

#include "flows/flow.hpp"

namespace flowgrad::flows {

// y[b, :, ...] = W x[b, :, ...] over the channel axis 1 of a (B, C) or (B, C, H, W) tensor.
template <class T> Tensor<T> mix_channels(const Tensor<T>& x, const Tensor<T>& w);

template <class T = float>
class InvConv1x1 : public Flow<T> {
 public:
  explicit InvConv1x1(std::size_t channels);
  FlowResult<T> forward(const Tensor<T>& x) override;
  FlowResult<T> inverse(const Tensor<T>& y) override;

  Tensor<T> weight;
};

template <class T = float>
class InvConv1x1LU : public Flow<T> {
 public:
  explicit InvConv1x1LU(std::size_t channels);
  FlowResult<T> forward(const Tensor<T>& x) override;
  FlowResult<T> inverse(const Tensor<T>& y) override;
  Tensor<T> matrix() const;  // W = P L U, on the tape

  Tensor<T> L, U, log_s;       // parameters
  Tensor<T> P, sign_s, lmask;  // buffers
};

}  // namespace flowgrad::flows
