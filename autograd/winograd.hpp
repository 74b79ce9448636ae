// 3x3 stride-1 "same" convolution by Winograd's minimal filtering F(m x m, 3 x 3)
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//
// Each m x m output tile is  Y = A^T [ (G g G^T) .* (B^T d B) ] A  for its (m+2) x (m+2)
// input patch d and the 3x3 filter g, so the 9 m^2 multiply-adds per tile and channel
// pair become (m+2)^2 (F(2x2, 3x3): 16 instead of 36; F(4x4, 3x3): 36 instead of 144),
// done as (m+2)^2 matrix products over channels, one per position xi of the patch:
//   forward        M_xi  = U_xi V_xi          (O x C)(C x tiles),  U = G g G^T, V = B^T d B
//   weight grad    dU_xi = dM_xi V_xi^T       dM = A dY A^T,       dg = G^T dU G
//   input grad     dV_xi = U_xi^T dM_xi       dd = B dV B^T, added into overlapping patches
// The backward passes are the exact adjoints of the forward's linear maps. conv2d
// (autograd/conv.cpp) uses this when `applies` says so; it is internal, not installed.
#pragma once

#include <cstddef>

namespace flowgrad::winograd {

struct Dims {
  std::size_t n, c, h, w, o;  // input (n, c, h, w), weight (o, c, 3, 3)
};

// 3x3 kernel, stride 1, padding 1, and enough channels on both sides that the products
// (not the tile transforms) dominate.
bool applies(std::size_t c, std::size_t o, std::size_t kh, std::size_t kw, std::size_t stride,
             std::size_t pad_h, std::size_t pad_w);

// The faster tile m for these sizes (measured, docs/PERFORMANCE.md): 4 on images at
// least 16 wide, else 2 (F(4x4, 3x3)'s partial tiles cost too much on small images). In
// float32, F(2x2, 3x3) is as accurate as im2col (~3e-7 of the largest value, 64
// channels); F(4x4, 3x3) ~5e-6.
std::size_t default_tile(const Dims& d);

// y (n, o, h, w) = conv(x, weight) + bias (bias may be null), with output tiles of
// `tile` (2 or 4).
template <class T>
void forward(const Dims& d, std::size_t tile, const T* x, const T* weight, const T* bias, T* y);

// gx (n, c, h, w), gw (o, c, 3, 3) and gb (o) from gy (n, o, h, w); each only when
// non-null, and overwritten, not accumulated into.
template <class T>
void backward(const Dims& d, std::size_t tile, const T* x, const T* weight, const T* gy, T* gx,
              T* gw, T* gb);

}  // namespace flowgrad::winograd
