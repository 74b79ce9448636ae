// conv2d as im2col + GEMM. Per image: the column matrix col[(c, i, j), (oh, ow)] =
// x[c, oh*s - p + i, ow*s - p + j] (zero outside), then
//   forward   y  = W col               (O x CKK) (CKK x OHW)
//   backward  dW += gy col^T,  dcol = W^T gy, dx = col2im(dcol)
// Images run in parallel, each GEMM on one thread (parallel_for holds BLAS at one thread
// meanwhile): im2col/col2im are then parallel too, and on 2 cores this measured faster
// than a serial loop over images calling a 2-thread GEMM. Each thread reuses its own
// column buffer across calls, so a training step allocates none.
// 3x3 stride-1 "same" convs with 16+ channels in and out go to Winograd's minimal
// filtering instead (autograd/winograd.cpp): 2.25x (F(2x2, 3x3)) or 4x (F(4x4, 3x3))
// fewer multiply-adds, the same values and gradients up to rounding.
// Other stride-1 convs with fewer output than input channels multiply by the weight first
// and add the taps' products shifted (forward_narrow below): no column matrix at all.
#include "autograd/conv.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <vector>

#include "autograd/small_gemm.hpp"
#include "autograd/instantiate.hpp"
#include "autograd/kernels.hpp"
#include "autograd/linalg.hpp"
#include "autograd/parallel.hpp"
#include "autograd/shape.hpp"
#include "autograd/winograd.hpp"

namespace flowgrad {

namespace {

std::atomic<ConvAlgorithm> g_algorithm{ConvAlgorithm::fastest};

struct Geometry {
  std::size_t n, c, h, w, o, kh, kw, stride, pad_h, pad_w, oh, ow;
  std::size_t in_image() const { return c * h * w; }
  std::size_t out_image() const { return o * oh * ow; }
  std::size_t patch() const { return c * kh * kw; }  // rows of the column matrix
  std::size_t positions() const { return oh * ow; }  // its columns
  bool pointwise() const { return kh == 1 && kw == 1 && stride == 1 && pad_h == 0 && pad_w == 0; }
  // Winograd's output tile for this conv, 0 for im2col.
  std::size_t winograd_tile() const {
    const ConvAlgorithm algorithm = g_algorithm.load();
    if (algorithm == ConvAlgorithm::im2col || !winograd::applies(c, o, kh, kw, stride, pad_h, pad_w))
      return 0;
    return algorithm == ConvAlgorithm::winograd_2x2 ? 2 : winograd::default_tile(dims());
  }
  winograd::Dims dims() const { return {n, c, h, w, o}; }
};

template <class T>
Geometry geometry(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
                  std::size_t stride, std::size_t pad) {
  const Shape xs = x.shape(), ws = weight.shape();
  auto fail = [&](const std::string& why) {
    throw ShapeError("conv2d: input " + shape_str(xs) + ", weight " + shape_str(ws) +
                     (bias.defined() ? ", bias " + shape_str(bias.shape()) : std::string()) +
                     ", stride " + std::to_string(stride) + ", padding " + std::to_string(pad) +
                     ": " + why);
  };
  if (xs.size() != 4) fail("input must be (N, C, H, W)");
  if (ws.size() != 4) fail("weight must be (out, in, kh, kw)");
  if (xs[1] != ws[1]) fail("input has " + std::to_string(xs[1]) + " channels, weight expects " +
                           std::to_string(ws[1]));
  if (ws[0] == 0 || ws[1] == 0 || ws[2] == 0 || ws[3] == 0) fail("empty weight");
  if (bias.defined() && bias.shape() != Shape{ws[0]}) fail("bias must be (out,)");
  if (stride == 0) fail("stride must be at least 1");
  if (xs[2] + 2 * pad < ws[2] || xs[3] + 2 * pad < ws[3])
    fail("kernel is larger than the padded input");
  Geometry g{xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], stride, pad, pad, 0, 0};
  g.oh = (g.h + 2 * pad - g.kh) / stride + 1;
  g.ow = (g.w + 2 * pad - g.kw) / stride + 1;
  const std::size_t big = std::max({g.patch() * g.positions(), g.out_image(), g.in_image(),
                                    g.o * g.patch()});
  if (big > std::size_t(INT_MAX)) fail("too large for a single GEMM");
  return g;
}

// The output columns [lo, hi) whose input column ow*s - p + j falls inside [0, w).
inline void valid_range(const Geometry& g, std::size_t j, std::size_t& lo, std::size_t& hi) {
  const long s = long(g.stride), first = long(g.pad_w) - long(j), last = long(g.w) - 1 + first;
  lo = first <= 0 ? 0 : std::size_t((first + s - 1) / s);
  hi = last < 0 ? 0 : std::min(g.ow, std::size_t(last / s + 1));
  lo = std::min(lo, hi);
}

// A "same" conv (stride 1, output as wide as the input, e.g. 3x3 pad 1) shifts each
// channel plane by one offset per kernel tap: a row of the column matrix is then one
// contiguous copy of the plane, plus zeros where the tap falls in the padding.
// Span for tap (i, j), block rows [oh0, oh1): col row[k] <-> plane[k + shift], k in [lo, hi),
// after clamping to the plane (what is clamped off lies in the zeroed edge columns).
struct Span {
  long shift;
  std::size_t row_lo, row_hi;  // block rows whose input row exists
  std::size_t lo, hi;          // the copyable part of the row, flattened
};
inline bool same_width(const Geometry& g) { return g.stride == 1 && g.ow == g.w; }
inline Span same_width_span(const Geometry& g, std::size_t i, std::size_t j, std::size_t oh0,
                            std::size_t oh1) {
  const long ph = long(g.pad_h), W = long(g.w);
  Span sp;
  sp.shift = (long(oh0) + long(i) - ph) * W + long(j) - long(g.pad_w);
  sp.row_lo = std::size_t(std::clamp(ph - long(i), long(oh0), long(oh1))) - oh0;
  sp.row_hi = std::size_t(std::clamp(long(g.h) + ph - long(i), long(oh0), long(oh1))) - oh0;
  sp.row_hi = std::max(sp.row_hi, sp.row_lo);
  const long plane = long(g.h) * W;
  sp.lo = std::size_t(std::clamp(-sp.shift, long(sp.row_lo) * W, long(sp.row_hi) * W));
  sp.hi = std::size_t(std::clamp(plane - sp.shift, long(sp.lo), long(sp.row_hi) * W));
  return sp;
}

// Columns [0, lo) and [hi, ow) of the span's rows: a column at a time down the rows, as
// they are only k/2 wide (a loop along a row would become a memset call per row).
template <class T>
void zero_padding_columns(T* row, const Geometry& g, const Span& sp, std::size_t lo,
                          std::size_t hi) {
  for (std::size_t k = 0; k < lo; ++k)
    for (std::size_t r = sp.row_lo; r < sp.row_hi; ++r) row[r * g.ow + k] = T(0);
  for (std::size_t k = hi; k < g.ow; ++k)
    for (std::size_t r = sp.row_lo; r < sp.row_hi; ++r) row[r * g.ow + k] = T(0);
}

// Output rows [oh0, oh1) of the column matrix, into col with (oh1 - oh0) * ow columns.
template <class T>
void im2col(const T* img, const Geometry& g, std::size_t oh0, std::size_t oh1, T* col) {
  const std::size_t cols = (oh1 - oh0) * g.ow;
  for (std::size_t c = 0; c < g.c; ++c)
    for (std::size_t i = 0; i < g.kh; ++i)
      for (std::size_t j = 0; j < g.kw; ++j) {
        T* row = col + ((c * g.kh + i) * g.kw + j) * cols;
        const T* plane = img + c * g.h * g.w;
        std::size_t lo, hi;
        valid_range(g, j, lo, hi);
        if (same_width(g)) {
          const Span sp = same_width_span(g, i, j, oh0, oh1);
          std::fill(row, row + sp.lo, T(0));
          std::memcpy(row + sp.lo, plane + (long(sp.lo) + sp.shift), (sp.hi - sp.lo) * sizeof(T));
          std::fill(row + sp.hi, row + cols, T(0));
          zero_padding_columns(row, g, sp, lo, hi);
          continue;
        }
        const long shift = long(j) - long(g.pad_w);  // input column = ow*s + shift
        for (std::size_t oh = oh0; oh < oh1; ++oh) {
          T* out = row + (oh - oh0) * g.ow;
          const long ih = long(oh * g.stride) - long(g.pad_h) + long(i);
          if (ih < 0 || ih >= long(g.h)) {
            std::fill(out, out + g.ow, T(0));
            continue;
          }
          const T* src = plane + std::size_t(ih) * g.w;
          std::fill(out, out + lo, T(0));
          if (g.stride == 1)
            std::memcpy(out + lo, src + (long(lo) + shift), (hi - lo) * sizeof(T));
          else
            for (std::size_t ow = lo; ow < hi; ++ow) out[ow] = src[long(ow * g.stride) + shift];
          std::fill(out + hi, out + g.ow, T(0));
        }
      }
}

// The adjoint of im2col: img += every column entry at the pixel it was copied from.
// Clobbers col's padding entries (a "same" conv zeroes them to add whole rows at once).
template <class T>
void col2im(T* col, const Geometry& g, std::size_t oh0, std::size_t oh1, T* img) {
  const std::size_t cols = (oh1 - oh0) * g.ow;
  for (std::size_t c = 0; c < g.c; ++c)
    for (std::size_t i = 0; i < g.kh; ++i)
      for (std::size_t j = 0; j < g.kw; ++j) {
        T* row = col + ((c * g.kh + i) * g.kw + j) * cols;
        T* plane = img + c * g.h * g.w;
        std::size_t lo, hi;
        valid_range(g, j, lo, hi);
        if (same_width(g)) {
          const Span sp = same_width_span(g, i, j, oh0, oh1);
          zero_padding_columns(row, g, sp, lo, hi);
          T* d = plane + (long(sp.lo) + sp.shift);
          const T* in = row + sp.lo;
          for (std::size_t k = 0; k < sp.hi - sp.lo; ++k) d[k] += in[k];
          continue;
        }
        const long shift = long(j) - long(g.pad_w);
        for (std::size_t oh = oh0; oh < oh1; ++oh) {
          const long ih = long(oh * g.stride) - long(g.pad_h) + long(i);
          if (ih < 0 || ih >= long(g.h)) continue;
          const T* in = row + (oh - oh0) * g.ow;
          T* dst = plane + std::size_t(ih) * g.w;
          if (g.stride == 1) {  // contiguous: lets the compiler vectorise
            T* d = dst + (long(lo) + shift);
            for (std::size_t k = 0; k < hi - lo; ++k) d[k] += in[lo + k];
          } else {
            for (std::size_t ow = lo; ow < hi; ++ow) dst[long(ow * g.stride) + shift] += in[ow];
          }
        }
      }
}

// Output rows per block: bounds each thread's column buffer to a few MB on large images.
// (Smaller blocks, sized for L2, measured slower: the GEMMs get too thin.)
inline std::size_t rows_per_block(const Geometry& g, std::size_t scalar_size) {
  const std::size_t budget = std::size_t(4) << 20;
  const std::size_t row_bytes = g.patch() * g.ow * scalar_size;
  return std::max<std::size_t>(1, std::min(g.oh, budget / row_bytes));
}

// y_n = W col(x_n) (+ b), one block of output rows at a time.
template <class T>
void forward_image(const Geometry& g, const T* xn, const T* w, const T* b, T* yn) {
  const int O = int(g.o), K = int(g.patch()), P = int(g.positions());
  if (b)
    for (std::size_t o = 0; o < g.o; ++o) std::fill(yn + o * P, yn + (o + 1) * P, b[o]);
  if (g.pointwise()) {  // the image is its own column matrix
    small_gemm::multiply(O, P, K, w, K, 1, xn, P, yn, P, b != nullptr);
    return;
  }
  const std::size_t rows = rows_per_block(g, sizeof(T));
  T* col = kernels::scratch<T>(g.patch() * rows * g.ow);
  for (std::size_t oh0 = 0; oh0 < g.oh; oh0 += rows) {
    const std::size_t oh1 = std::min(g.oh, oh0 + rows);
    const int n = int((oh1 - oh0) * g.ow);
    im2col(xn, g, oh0, oh1, col);
    small_gemm::multiply(O, n, K, w, K, 1, col, n, yn + oh0 * g.ow, P, b != nullptr);
  }
}

// dw += gy_n col(x_n)^T and dx_n = col2im(W^T gy_n), each when asked for (non-null).
template <class T>
void backward_image(const Geometry& g, const T* xn, const T* w, const T* gn, T* dw, T* dxn) {
  const int O = int(g.o), K = int(g.patch()), P = int(g.positions());
  if (g.pointwise()) {
    if (dw) small_gemm::multiply_add_bt(O, K, P, gn, P, xn, P, dw, K);
    if (dxn) small_gemm::multiply(K, P, O, w, 1, K, gn, P, dxn, P, false);
    return;
  }
  const std::size_t rows = rows_per_block(g, sizeof(T));
  T* col = kernels::scratch<T>(g.patch() * rows * g.ow);
  if (dxn) std::fill(dxn, dxn + g.in_image(), T(0));
  for (std::size_t oh0 = 0; oh0 < g.oh; oh0 += rows) {
    const std::size_t oh1 = std::min(g.oh, oh0 + rows);
    const int n = int((oh1 - oh0) * g.ow);
    const T* g_block = gn + oh0 * g.ow;
    if (dw) {
      im2col(xn, g, oh0, oh1, col);
      small_gemm::multiply_add_bt(O, K, n, g_block, P, col, n, dw, K);
    }
    if (dxn) {
      small_gemm::multiply(K, n, O, w, 1, K, g_block, P, col, n, false);
      col2im(col, g, oh0, oh1, dxn);
    }
  }
}

// Few output channels (Glow's zero-convs, 128 -> 4 or 8 channels, 3x3): multiply the
// image by the weight first, Z = W_t x_n with one row per (output channel, tap), then
// add each tap's row, shifted, into the output. Z has O*kh*kw rows where im2col has
// C*kh*kw, so far less memory is copied; the backward builds the shifted gradient
// G = the adjoint of that shift-add, then dW_t += G x_n^T and dx_n = W_t^T G.
// Stride 1 only; W_t is the weight reordered to (o, i, j, c).
inline bool narrow_output(const Geometry& g) {
  return g.stride == 1 && !g.pointwise() && g.o < g.c && g_algorithm.load() != ConvAlgorithm::im2col &&
         g.o * g.kh * g.kw * g.h * g.w <= std::size_t(INT_MAX);
}

// Output rows (or columns) [lo, hi) whose tap k lands inside the input: input = output + shift.
struct TapRange {
  std::size_t lo, hi;
  long shift;
};
inline TapRange tap_range(std::size_t out, std::size_t in, std::size_t pad, std::size_t k) {
  const long shift = long(k) - long(pad);
  const long lo = std::max(0L, -shift), hi = std::max(lo, std::min(long(out), long(in) - shift));
  return {std::size_t(lo), std::size_t(hi), shift};
}

// (o, c, i, j) <-> (o, i, j, c); to_taps picks the direction.
template <class T>
std::vector<T> reorder_weight(const Geometry& g, const T* w, bool to_taps) {
  const std::size_t taps = g.kh * g.kw;
  std::vector<T> out(g.o * g.c * taps);
  for (std::size_t o = 0; o < g.o; ++o)
    for (std::size_t c = 0; c < g.c; ++c)
      for (std::size_t t = 0; t < taps; ++t) {
        const std::size_t standard = (o * g.c + c) * taps + t, tapped = (o * taps + t) * g.c + c;
        if (to_taps)
          out[tapped] = w[standard];
        else
          out[standard] = w[tapped];
      }
  return out;
}

// Calls f(z_row, y_row, n) for every run of n elements where tap row (o, i, j) of Z meets a
// row of output channel o, z being (O*kh*kw, h*w) and y (O, oh, ow).
template <class F>
void for_each_tap_run(const Geometry& g, F&& f) {
  for (std::size_t o = 0; o < g.o; ++o)
    for (std::size_t i = 0; i < g.kh; ++i) {
      const TapRange r = tap_range(g.oh, g.h, g.pad_h, i);
      for (std::size_t j = 0; j < g.kw; ++j) {
        const TapRange q = tap_range(g.ow, g.w, g.pad_w, j);
        const std::size_t z_plane = ((o * g.kh + i) * g.kw + j) * g.h * g.w;
        for (std::size_t u = r.lo; u < r.hi; ++u)
          f(z_plane + std::size_t(long(u) + r.shift) * g.w + std::size_t(long(q.lo) + q.shift),
            (o * g.oh + u) * g.ow + q.lo, q.hi - q.lo);
      }
    }
}

template <class T>
void forward_narrow(const Geometry& g, const T* xn, const T* wt, const T* b, T* yn) {
  const int rows = int(g.o * g.kh * g.kw), HW = int(g.h * g.w), C = int(g.c);
  T* z = kernels::scratch<T>(std::size_t(rows) * HW);
  small_gemm::multiply(rows, HW, C, wt, C, 1, xn, HW, z, HW, false);
  for (std::size_t o = 0; o < g.o; ++o)
    std::fill(yn + o * g.positions(), yn + (o + 1) * g.positions(), b ? b[o] : T(0));
  for_each_tap_run(g, [&](std::size_t zi, std::size_t yi, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) yn[yi + k] += z[zi + k];
  });
}

// dwt += G x_n^T and dx_n = W_t^T G, each when asked for (non-null).
template <class T>
void backward_narrow(const Geometry& g, const T* xn, const T* wt, const T* gn, T* dwt, T* dxn) {
  const int rows = int(g.o * g.kh * g.kw), HW = int(g.h * g.w), C = int(g.c);
  T* shifted = kernels::scratch<T>(std::size_t(rows) * HW);
  std::fill(shifted, shifted + std::size_t(rows) * HW, T(0));
  for_each_tap_run(g, [&](std::size_t zi, std::size_t yi, std::size_t n) {
    std::copy(gn + yi, gn + yi + n, shifted + zi);
  });
  if (dwt) small_gemm::multiply_add_bt(rows, C, HW, shifted, HW, xn, HW, dwt, C);
  if (dxn) small_gemm::multiply(C, HW, rows, wt, 1, C, shifted, HW, dxn, HW, false);
}

}  // namespace

void set_conv_algorithm(ConvAlgorithm algorithm) { g_algorithm = algorithm; }
ConvAlgorithm conv_algorithm() { return g_algorithm.load(); }

template <class T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
                 std::size_t stride, std::size_t padding) {
  const Geometry g = geometry(x, weight, bias, stride, padding);
  // Points (1x1 images, 1x1 kernel: the 2-D examples): a linear layer over the batch, one
  // GEMM instead of one tiny GEMM per image.
  if (g.pointwise() && g.positions() == 1)
    return reshape(linear(reshape(x, {g.n, g.c}), reshape(weight, {g.o, g.c}), bias), {g.n, g.o, 1, 1});
  xt::xarray<T> y = xt::xarray<T>::from_shape({g.n, g.o, g.oh, g.ow});
  const T* xd = x.value().data();
  const T* wd = weight.value().data();
  const T* bd = bias.defined() ? bias.value().data() : nullptr;
  T* yd = y.data();
  // The backward follows the forward's choice.
  const std::size_t tile = g.winograd_tile();
  const bool narrow = !tile && narrow_output(g);
  if (tile) {
    winograd::forward(g.dims(), tile, xd, wd, bd, yd);
  } else if (narrow) {
    const std::vector<T> wt = reorder_weight(g, wd, true);
    parallel_for(0, g.n, [&](std::size_t n) {
      forward_narrow(g, xd + n * g.in_image(), wt.data(), bd, yd + n * g.out_image());
    });
  } else {
    parallel_for(0, g.n, [&](std::size_t n) {
      forward_image(g, xd + n * g.in_image(), wd, bd, yd + n * g.out_image());
    });
  }

  std::vector<Tensor<T>> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return record<T>("conv2d", std::move(y), std::move(inputs),
                   [x, weight, bias, g, tile, narrow](const auto& gy, const auto&) {
    const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
    const bool need_b = bias.defined() && bias.requires_grad();
    const std::size_t P = g.positions();
    const T* xd = x.value().data();
    const T* wd = weight.value().data();
    const T* gd = gy.data();
    xt::xarray<T> gx;
    if (need_x) gx = xt::xarray<T>::from_shape({g.n, g.c, g.h, g.w});
    if (tile) {
      xt::xarray<T> gw, gb;
      if (need_w) gw = xt::xarray<T>::from_shape(weight.shape());
      if (need_b) gb = xt::xarray<T>::from_shape(bias.shape());
      winograd::backward(g.dims(), tile, xd, wd, gd, need_x ? gx.data() : nullptr,
                         need_w ? gw.data() : nullptr, need_b ? gb.data() : nullptr);
      if (need_x) x.accumulate_grad(std::move(gx));
      if (need_w) weight.accumulate_grad(std::move(gw));
      if (need_b) bias.accumulate_grad(std::move(gb));
      return;
    }
    // dW and db are sums over the batch: each chunk of images sums into its own slot.
    // A few chunks per thread, so a thread slowed down by another process is not waited
    // for long; one chunk on one thread.
    const std::size_t chunks = std::max<std::size_t>(1, kernels::pieces_for(g.n));
    std::vector<std::vector<T>> gw(need_w ? chunks : 0), gb(need_b ? chunks : 0);
    const std::vector<T> wt = narrow ? reorder_weight(g, wd, true) : std::vector<T>();
    parallel_for(0, chunks, [&](std::size_t ch) {
      const std::size_t lo = ch * g.n / chunks, hi = (ch + 1) * g.n / chunks;
      if (need_w) gw[ch].assign(g.o * g.patch(), T(0));
      if (need_b) gb[ch].assign(g.o, T(0));
      for (std::size_t n = lo; n < hi; ++n) {
        const T* gn = gd + n * g.out_image();
        T* dw = need_w ? gw[ch].data() : nullptr;  // (o, i, j, c) when narrow
        T* dxn = need_x ? gx.data() + n * g.in_image() : nullptr;
        if (narrow)
          backward_narrow(g, xd + n * g.in_image(), wt.data(), gn, dw, dxn);
        else
          backward_image(g, xd + n * g.in_image(), wd, gn, dw, dxn);
        if (need_b)
          for (std::size_t o = 0; o < g.o; ++o) gb[ch][o] += kernels::sum_of(gn + o * P, P);
      }
    });
    if (need_x) x.accumulate_grad(std::move(gx));
    auto total = [&](const std::vector<std::vector<T>>& parts, const Shape& shape) {
      xt::xarray<T> sum = xt::xarray<T>::from_shape(shape);
      kernels::sum_parts(parts, sum.data());
      return sum;
    };
    if (need_w) {
      xt::xarray<T> dw = total(gw, weight.shape());
      if (narrow) {
        const std::vector<T> standard = reorder_weight(g, dw.data(), false);
        std::copy(standard.begin(), standard.end(), dw.begin());
      }
      weight.accumulate_grad(std::move(dw));
    }
    if (need_b) bias.accumulate_grad(total(gb, bias.shape()));
  }, OutputUse::Unread);  // backward reads only the inputs
}

#define FLOWGRAD_CONV(T)                                                                 \
  template Tensor<T> conv2d(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,       \
                            std::size_t, std::size_t);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_CONV)

}  // namespace flowgrad
