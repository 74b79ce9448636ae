// Coupling layers: half of the input passes unchanged and conditions an invertible,
// elementwise map of the other half, so the Jacobian is triangular and logdet is cheap.
// The conditioning networks are ordinary nn layers, registered as the child "net".
#pragma once

#include <memory>

#include "flows/flow.hpp"
#include "nn/module.hpp"

namespace flowgrad::flows {

// NICE's additive coupling on flat vectors (B, D), D even, with the reference's odd/even
// split: parity 0 keeps x[:, 0::2] and maps x[:, 1::2] -> x[:, 1::2] + net(x[:, 0::2]);
// parity 1 swaps the roles. The halves are interleaved back in place. logdet = 0.
template <class T = float>
class AdditiveCoupling : public Flow<T> {
 public:
  AdditiveCoupling(std::shared_ptr<nn::Layer<T>> net, int parity);
  FlowResult<T> forward(const Tensor<T>& x) override;
  FlowResult<T> inverse(const Tensor<T>& y) override;

  std::shared_ptr<nn::Layer<T>> net;

 private:
  int parity_;
};

// NICE's diagonal scaling y = x * exp(log_scale), log_scale of the per-example shape.
// logdet = sum(log_scale) for every example.
template <class T = float>
class DiagonalScaling : public Flow<T> {
 public:
  // Owns a zero-initialised parameter `log_scale` of this per-example shape.
  explicit DiagonalScaling(const Shape& shape);
  // Uses a parameter owned elsewhere (e.g. a model that names it as the reference does).
  explicit DiagonalScaling(Tensor<T> shared_log_scale);
  FlowResult<T> forward(const Tensor<T>& x) override;
  FlowResult<T> inverse(const Tensor<T>& y) override;

  Tensor<T> log_scale;
};

// Masks for AffineCoupling, shape (C, H, W): 1 where the input passes unchanged.
// Checkerboard: 1 where (i + j) % 2 == parity. Channel: 1 on the first (or second) half
// of the channels.
template <class T> xt::xarray<T> checkerboard_mask(std::size_t c, std::size_t h, std::size_t w, int parity);
template <class T> xt::xarray<T> channel_mask(std::size_t c, std::size_t h, std::size_t w, bool first_half);

// Real NVP's affine coupling with a fixed mask m (buffer `mask`, shape (C, H, W)), as the
// reference's AffineCoupling:
//   h_s, h_t = net(x * m).chunk(2, 1)
//   log_scale = scale * tanh(h_s) * (1 - m),  shift = h_t * (1 - m)
//   y = x * exp(log_scale) + shift,  logdet = sum(log_scale)
// `scale` (the reference's name) is the learned bound of |log_scale|, a parameter of shape
// (C, 1, 1) initialised to 1; net maps C -> 2C channels.
template <class T = float>
class AffineCoupling : public Flow<T> {
 public:
  AffineCoupling(xt::xarray<T> mask, std::shared_ptr<nn::Layer<T>> net);
  FlowResult<T> forward(const Tensor<T>& x) override;
  FlowResult<T> inverse(const Tensor<T>& y) override;

  Tensor<T> mask, scale;
  std::shared_ptr<nn::Layer<T>> net;

 private:
  struct LogScaleShift { Tensor<T> log_scale, shift; };
  LogScaleShift log_scale_and_shift(const Tensor<T>& x);
};

// Glow's coupling on channels, as the reference's GlowCoupling: xa, xb = chunk(x, 2, 1),
// h = net(xa), shift = h[:, 0::2], h_s = h[:, 1::2] (net maps C/2 -> C channels):
//   yb = (xb + shift) * scale,  logdet = sum log scale,  y = cat(xa, yb).
// The scale map, by `scale_clamp`:
//   0 (the reference, openai/glow):  scale = sigmoid(h_s + 2). It only contracts towards the
//     latent, and sampling divides by it: a very negative h_s overflows a sample.
//   c > 0:  log scale = c * tanh(h_s / c), so scale lies in [e^-c, e^c] both ways and every
//     coupling's inverse is bounded by construction; scale = 1 at h_s = 0.
// Additive (affine = false): yb = xb + h, logdet = 0 (net maps C/2 -> C/2).
template <class T = float>
class GlowCoupling : public Flow<T> {
 public:
  explicit GlowCoupling(std::shared_ptr<nn::Layer<T>> net, bool affine = true, double scale_clamp = 0);
  FlowResult<T> forward(const Tensor<T>& x) override;
  FlowResult<T> inverse(const Tensor<T>& y) override;

  std::shared_ptr<nn::Layer<T>> net;
  bool affine() const { return affine_; }
  double scale_clamp() const { return scale_clamp_; }

 private:
  struct ShiftScale {
    Tensor<T> shift, scale, log_scale;  // scale and log_scale undefined when additive
  };
  ShiftScale shift_scale(const char* op, const Tensor<T>& xa, std::size_t channels);
  bool affine_;
  double scale_clamp_;
};

}  // namespace flowgrad::flows
