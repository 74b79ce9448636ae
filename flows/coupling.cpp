#include "flows/coupling.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/elementwise.hpp"
#include "autograd/instantiate.hpp"
#include "autograd/shape.hpp"

namespace flowgrad::flows {

// ---------------------------------------------------------------- NICE
template <class T>
AdditiveCoupling<T>::AdditiveCoupling(std::shared_ptr<nn::Layer<T>> n, int parity) : parity_(parity) {
  if (!n) throw std::invalid_argument("AdditiveCoupling: net is null");
  if (parity != 0 && parity != 1) throw std::invalid_argument("AdditiveCoupling: parity must be 0 or 1");
  net = this->register_module("net", std::move(n));
}

namespace {
template <class T>
void check_flat_even(const char* op, const Shape& s) {
  if (s.size() != 2 || s[1] % 2)
    throw ShapeError(std::string(op) + ": expected (B, D) with D even, got " + shape_str(s));
}
// Interleave `even` into positions 0::2 and `odd` into 1::2: stack on a new last axis, flatten.
template <class T>
Tensor<T> interleave(const Tensor<T>& even, const Tensor<T>& odd) {
  return flatten(stack(std::vector<Tensor<T>>{even, odd}, 2), 1);
}
template <class T>
void check_net_output(const char* op, const Tensor<T>& h, const Shape& want) {
  if (h.shape() != want)
    throw ShapeError(std::string(op) + ": net returned " + shape_str(h.shape()) + ", expected " +
                     shape_str(want));
}
}  // namespace

template <class T>
FlowResult<T> AdditiveCoupling<T>::forward(const Tensor<T>& x) {
  const Shape s = x.shape();
  check_flat_even<T>("AdditiveCoupling::forward", s);
  auto a = slice(x, 1, parity_, s[1], 2), b = slice(x, 1, 1 - parity_, s[1], 2);
  auto shift = net->forward(a);
  check_net_output("AdditiveCoupling::forward", shift, b.shape());
  auto y = parity_ == 0 ? interleave(a, b + shift) : interleave(b + shift, a);
  return {y, zero_logdet<T>(s[0])};
}

template <class T>
FlowResult<T> AdditiveCoupling<T>::inverse(const Tensor<T>& y) {
  const Shape s = y.shape();
  check_flat_even<T>("AdditiveCoupling::inverse", s);
  auto a = slice(y, 1, parity_, s[1], 2), b = slice(y, 1, 1 - parity_, s[1], 2);
  auto shift = net->forward(a);
  check_net_output("AdditiveCoupling::inverse", shift, b.shape());
  auto x = parity_ == 0 ? interleave(a, b - shift) : interleave(b - shift, a);
  return {x, zero_logdet<T>(s[0])};
}

// ---------------------------------------------------------------- diagonal scaling
template <class T>
DiagonalScaling<T>::DiagonalScaling(const Shape& shape) {
  log_scale = this->register_parameter("log_scale", xt::zeros<T>(shape));
}

template <class T>
DiagonalScaling<T>::DiagonalScaling(Tensor<T> shared) : log_scale(std::move(shared)) {
  if (!log_scale.defined()) throw std::invalid_argument("DiagonalScaling: log_scale is undefined");
}

namespace {
template <class T>
void check_per_example(const char* op, const Shape& x, const Shape& p) {
  if (x.size() != p.size() + 1 || !std::equal(p.begin(), p.end(), x.begin() + 1))
    throw ShapeError(std::string(op) + ": input " + shape_str(x) + " is not a batch of " + shape_str(p));
}
}  // namespace

template <class T>
FlowResult<T> DiagonalScaling<T>::forward(const Tensor<T>& x) {
  check_per_example<T>("DiagonalScaling::forward", x.shape(), log_scale.shape());
  return {x * exp(log_scale), per_example(sum(log_scale), x.shape()[0])};
}

template <class T>
FlowResult<T> DiagonalScaling<T>::inverse(const Tensor<T>& y) {
  check_per_example<T>("DiagonalScaling::inverse", y.shape(), log_scale.shape());
  return {y * exp(-log_scale), per_example(-sum(log_scale), y.shape()[0])};
}

// ---------------------------------------------------------------- Real NVP
template <class T>
xt::xarray<T> checkerboard_mask(std::size_t c, std::size_t h, std::size_t w, int parity) {
  xt::xarray<T> m = xt::zeros<T>({c, h, w});
  for (std::size_t k = 0; k < c; ++k)
    for (std::size_t i = 0; i < h; ++i)
      for (std::size_t j = 0; j < w; ++j) m(k, i, j) = int((i + j) % 2) == parity ? T(1) : T(0);
  return m;
}

template <class T>
xt::xarray<T> channel_mask(std::size_t c, std::size_t h, std::size_t w, bool first_half) {
  if (c % 2) throw std::invalid_argument("channel_mask: needs an even number of channels, got " + std::to_string(c));
  xt::xarray<T> m = xt::zeros<T>({c, h, w});
  for (std::size_t k = first_half ? 0 : c / 2; k < (first_half ? c / 2 : c); ++k)
    for (std::size_t i = 0; i < h; ++i)
      for (std::size_t j = 0; j < w; ++j) m(k, i, j) = T(1);
  return m;
}

template <class T>
AffineCoupling<T>::AffineCoupling(xt::xarray<T> m, std::shared_ptr<nn::Layer<T>> n) {
  if (!n) throw std::invalid_argument("AffineCoupling: net is null");
  if (m.dimension() != 3)
    throw ShapeError("AffineCoupling: mask must be (C, H, W), got " + shape_str(to_shape(m.shape())));
  const std::size_t c = m.shape()[0];
  mask = this->register_buffer("mask", std::move(m));
  net = this->register_module("net", std::move(n));
  scale = this->register_parameter("scale", xt::ones<T>({c, std::size_t(1), std::size_t(1)}));
}

template <class T>
typename AffineCoupling<T>::LogScaleShift AffineCoupling<T>::log_scale_and_shift(const Tensor<T>& x) {
  const Shape s = x.shape(), ms = mask.shape();
  if (s.size() != 4 || !std::equal(ms.begin(), ms.end(), s.begin() + 1))
    throw ShapeError("AffineCoupling: input " + shape_str(s) + " does not fit the mask " + shape_str(ms));
  const xt::xarray<T> transformed = T(1) - mask.value();  // 1 - m
  auto h = net->forward(mul(x, mask.value()));
  Shape want = s;
  want[1] *= 2;
  check_net_output("AffineCoupling", h, want);
  auto halves = chunk(h, 2, 1);  // h_s, h_t
  return {mul(scale * tanh(halves[0]), transformed), mul(halves[1], transformed)};
}

template <class T>
FlowResult<T> AffineCoupling<T>::forward(const Tensor<T>& x) {
  auto [log_scale, shift] = log_scale_and_shift(x);
  return {x * exp(log_scale) + shift, sum_per_example(log_scale)};
}

template <class T>
FlowResult<T> AffineCoupling<T>::inverse(const Tensor<T>& y) {
  auto [log_scale, shift] = log_scale_and_shift(y);  // y * m == x * m: the net sees the same input
  return {(y - shift) * exp(-log_scale), -sum_per_example(log_scale)};
}

// ---------------------------------------------------------------- Glow
template <class T>
GlowCoupling<T>::GlowCoupling(std::shared_ptr<nn::Layer<T>> n, bool affine, double scale_clamp)
    : affine_(affine), scale_clamp_(scale_clamp) {
  if (!n) throw std::invalid_argument("GlowCoupling: net is null");
  if (!(scale_clamp >= 0 && std::isfinite(scale_clamp)))
    throw std::invalid_argument("GlowCoupling: scale_clamp must be finite and >= 0, got " + std::to_string(scale_clamp));
  net = this->register_module("net", std::move(n));
}

namespace {
template <class T>
std::vector<Tensor<T>> halves(const char* op, const Tensor<T>& x) {
  const Shape s = x.shape();
  if (s.size() != 4 || s[1] % 2)
    throw ShapeError(std::string(op) + ": expected (B, C, H, W) with C even, got " + shape_str(s));
  return chunk(x, 2, 1);
}
}  // namespace

template <class T>
typename GlowCoupling<T>::ShiftScale GlowCoupling<T>::shift_scale(const char* op, const Tensor<T>& xa,
                                                                  std::size_t channels) {
  auto h = net->forward(xa);
  Shape want = xa.shape();
  if (!affine_) {
    check_net_output(op, h, want);
    return {h, {}, {}};
  }
  want[1] = channels;
  check_net_output(op, h, want);
  auto shift = slice(h, 1, 0, channels, 2);
  auto h_s = slice(h, 1, 1, channels, 2);
  if (scale_clamp_ > 0) {
    const T c = T(scale_clamp_);
    auto log_scale = tanh(h_s * (T(1) / c)) * c;
    return {shift, exp(log_scale), log_scale};
  }
  h_s = h_s + T(2);
  return {shift, sigmoid(h_s), log_sigmoid(h_s)};
}

template <class T>
FlowResult<T> GlowCoupling<T>::forward(const Tensor<T>& x) {
  auto parts = halves("GlowCoupling::forward", x);
  const auto& xa = parts[0];
  const auto& xb = parts[1];
  const auto st = shift_scale("GlowCoupling::forward", xa, x.shape()[1]);
  if (!affine_) return {concat(std::vector<Tensor<T>>{xa, xb + st.shift}, 1), zero_logdet<T>(x.shape()[0])};
  return {concat(std::vector<Tensor<T>>{xa, (xb + st.shift) * st.scale}, 1), sum_per_example(st.log_scale)};
}

template <class T>
FlowResult<T> GlowCoupling<T>::inverse(const Tensor<T>& y) {
  auto parts = halves("GlowCoupling::inverse", y);
  const auto& ya = parts[0];
  const auto& yb = parts[1];
  const auto st = shift_scale("GlowCoupling::inverse", ya, y.shape()[1]);
  if (!affine_) return {concat(std::vector<Tensor<T>>{ya, yb - st.shift}, 1), zero_logdet<T>(y.shape()[0])};
  return {concat(std::vector<Tensor<T>>{ya, yb / st.scale - st.shift}, 1), -sum_per_example(st.log_scale)};
}

#define FLOWGRAD_COUPLING(T)                                                                   \
  template class AdditiveCoupling<T>;                                                          \
  template class DiagonalScaling<T>;                                                           \
  template xt::xarray<T> checkerboard_mask<T>(std::size_t, std::size_t, std::size_t, int);     \
  template xt::xarray<T> channel_mask<T>(std::size_t, std::size_t, std::size_t, bool);         \
  template class AffineCoupling<T>;                                                            \
  template class GlowCoupling<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_COUPLING)

}  // namespace flowgrad::flows
