// 3x3 stride-1 "same" convolution by Winograd's minimal filtering F(2x2, 3x3)
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//
// Each 2x2 output tile is  Y = A^T [ (G g G^T) .* (B^T d B) ] A  for its 4x4 input patch d
// and the 3x3 filter g, so the 36 multiply-adds per tile and channel pair become 16, done
// as 16 matrix products over channels (one per position xi of the 4x4 tile):
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

// y (n, o, h, w) = conv(x, weight) + bias (bias may be null).
template <class T>
void forward(const Dims& d, const T* x, const T* weight, const T* bias, T* y);

// gx (n, c, h, w), gw (o, c, 3, 3) and gb (o) from gy (n, o, h, w); each only when
// non-null, and overwritten, not accumulated into.
template <class T>
void backward(const Dims& d, const T* x, const T* weight, const T* gy, T* gx, T* gw, T* gb);

}  // namespace flowgrad::winograd
