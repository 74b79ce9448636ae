#include "autograd/winograd.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/instantiate.hpp"
#include "autograd/kernels.hpp"
#include "autograd/parallel.hpp"

namespace flowgrad::winograd {

namespace {

constexpr std::size_t kXi = 16;  // positions of a 4x4 tile

// A chunk of images is transformed and multiplied together, so that each product has
// about this many columns (tiles): measured with OpenBLAS on 64 channels, ~200 columns
// run fastest (the 16 x C x tiles transformed input stays in L2).
constexpr std::size_t kTilesPerChunk = 196;

struct Layout {
  std::size_t tiles_h, tiles_w, tiles;  // per image
  std::size_t padded_w;                 // a row with one zero on the left, 2 * tiles_w + 2
  std::size_t images_per_chunk, chunks;
  explicit Layout(const Dims& d)
      : tiles_h((d.h + 1) / 2), tiles_w((d.w + 1) / 2), tiles(tiles_h * tiles_w),
        padded_w(2 * tiles_w + 2),
        images_per_chunk(std::max<std::size_t>(1, kTilesPerChunk / tiles)),
        chunks((d.n + images_per_chunk - 1) / images_per_chunk) {}
  std::size_t first_image(std::size_t chunk) const { return chunk * images_per_chunk; }
  std::size_t images(const Dims& d, std::size_t chunk) const {
    return std::min(d.n, first_image(chunk) + images_per_chunk) - first_image(chunk);
  }
};

// Per-thread buffers that only grow, one per role, reused across calls.
template <class T, int Role>
T* buffer(std::size_t size) {
  thread_local std::vector<T> b;
  if (b.size() < size) b.resize(size);
  return b.data();
}

// U[xi][o][c] = (G g G^T)[xi] for g = weight[o][c], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
template <class T>
std::vector<T> transform_weight(const Dims& d, const T* weight) {
  std::vector<T> u(kXi * d.o * d.c);
  const std::size_t oc = d.o * d.c;
  for (std::size_t k = 0; k < oc; ++k) {
    const T* g = weight + 9 * k;
    T gg[4][3];  // G g
    for (int j = 0; j < 3; ++j) {
      gg[0][j] = g[j];
      gg[1][j] = T(0.5) * (g[j] + g[3 + j] + g[6 + j]);
      gg[2][j] = T(0.5) * (g[j] - g[3 + j] + g[6 + j]);
      gg[3][j] = g[6 + j];
    }
    for (int a = 0; a < 4; ++a) {
      const T* r = gg[a];
      T* out = u.data() + std::size_t(4 * a) * oc + k;
      out[0 * oc] = r[0];
      out[1 * oc] = T(0.5) * (r[0] + r[1] + r[2]);
      out[2 * oc] = T(0.5) * (r[0] - r[1] + r[2]);
      out[3 * oc] = r[2];
    }
  }
  return u;
}

// The adjoint: dg = G^T dU G, written to grad[o][c][3][3].
template <class T>
void weight_grad_from(const Dims& d, const T* du, T* grad) {
  const std::size_t oc = d.o * d.c;
  for (std::size_t k = 0; k < oc; ++k) {
    T r[4][3];  // dU G, row a
    for (int a = 0; a < 4; ++a) {
      const T* in = du + std::size_t(4 * a) * oc + k;
      const T u0 = in[0], u1 = in[oc], u2 = in[2 * oc], u3 = in[3 * oc];
      r[a][0] = u0 + T(0.5) * (u1 + u2);
      r[a][1] = T(0.5) * (u1 - u2);
      r[a][2] = T(0.5) * (u1 + u2) + u3;
    }
    T* g = grad + 9 * k;
    for (int j = 0; j < 3; ++j) {
      g[j] = r[0][j] + T(0.5) * (r[1][j] + r[2][j]);
      g[3 + j] = T(0.5) * (r[1][j] - r[2][j]);
      g[6 + j] = T(0.5) * (r[1][j] + r[2][j]) + r[3][j];
    }
  }
}

// V[xi][c][t] = (B^T d B)[xi] for the 4x4 patch d of every tile t of the chunk, with
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. A tile row at a time: the four input
// rows (zero-padded) are combined first, then the columns of each result, so every
// inner loop runs along a row.
template <class T>
void transform_input(const Dims& d, const Layout& L, const T* x, std::size_t images, T* v) {
  const std::size_t T_ = images * L.tiles, pw = L.padded_w, tw = L.tiles_w;
  T* rows = buffer<T, 0>(8 * pw);  // 4 padded input rows, then their 4 combinations
  for (std::size_t i = 0; i < images; ++i)
    for (std::size_t c = 0; c < d.c; ++c) {
      const T* plane = x + (i * d.c + c) * d.h * d.w;
      for (std::size_t ty = 0; ty < L.tiles_h; ++ty) {
        for (std::size_t a = 0; a < 4; ++a) {
          T* r = rows + a * pw;
          const long ih = long(2 * ty + a) - 1;
          std::fill(r, r + pw, T(0));
          if (ih >= 0 && ih < long(d.h)) std::memcpy(r + 1, plane + ih * d.w, d.w * sizeof(T));
        }
        const T *r0 = rows, *r1 = rows + pw, *r2 = rows + 2 * pw, *r3 = rows + 3 * pw;
        T *s0 = rows + 4 * pw, *s1 = s0 + pw, *s2 = s1 + pw, *s3 = s2 + pw;
        for (std::size_t k = 0; k < pw; ++k) {
          s0[k] = r0[k] - r2[k];
          s1[k] = r1[k] + r2[k];
          s2[k] = r2[k] - r1[k];
          s3[k] = r1[k] - r3[k];
        }
        const std::size_t t0 = i * L.tiles + ty * tw;
        for (std::size_t a = 0; a < 4; ++a) {
          const T* s = s0 + a * pw;
          T* v0 = v + ((4 * a + 0) * d.c + c) * T_ + t0;
          T* v1 = v + ((4 * a + 1) * d.c + c) * T_ + t0;
          T* v2 = v + ((4 * a + 2) * d.c + c) * T_ + t0;
          T* v3 = v + ((4 * a + 3) * d.c + c) * T_ + t0;
          for (std::size_t tx = 0; tx < tw; ++tx) {
            const T e0 = s[2 * tx], e1 = s[2 * tx + 1], e2 = s[2 * tx + 2], e3 = s[2 * tx + 3];
            v0[tx] = e0 - e2;
            v1[tx] = e1 + e2;
            v2[tx] = e2 - e1;
            v3[tx] = e1 - e3;
          }
        }
      }
    }
}

// The adjoint of transform_input: x_grad += B dV B^T of every tile at its patch (patches
// overlap by two rows and columns, and what falls in the padding is dropped).
template <class T>
void input_grad_from(const Dims& d, const Layout& L, const T* dv, std::size_t images, T* gx) {
  const std::size_t T_ = images * L.tiles, pw = L.padded_w, tw = L.tiles_w;
  T* u = buffer<T, 1>(16 * tw);  // u[a][j]: tile row a, combined over columns
  T* acc = buffer<T, 2>(pw);     // one padded output row
  for (std::size_t i = 0; i < images; ++i)
    for (std::size_t c = 0; c < d.c; ++c) {
      T* plane = gx + (i * d.c + c) * d.h * d.w;
      for (std::size_t ty = 0; ty < L.tiles_h; ++ty) {
        const std::size_t t0 = i * L.tiles + ty * tw;
        for (std::size_t a = 0; a < 4; ++a) {
          const T* v0 = dv + ((4 * a + 0) * d.c + c) * T_ + t0;
          const T* v1 = dv + ((4 * a + 1) * d.c + c) * T_ + t0;
          const T* v2 = dv + ((4 * a + 2) * d.c + c) * T_ + t0;
          const T* v3 = dv + ((4 * a + 3) * d.c + c) * T_ + t0;
          T *u0 = u + (4 * a) * tw, *u1 = u0 + tw, *u2 = u1 + tw, *u3 = u2 + tw;
          for (std::size_t tx = 0; tx < tw; ++tx) {
            u0[tx] = v0[tx];
            u1[tx] = v1[tx] - v2[tx] + v3[tx];
            u2[tx] = v1[tx] + v2[tx] - v0[tx];
            u3[tx] = -v3[tx];
          }
        }
        for (std::size_t r = 0; r < 4; ++r) {  // patch row r = input row 2 ty - 1 + r
          const long ih = long(2 * ty + r) - 1;
          if (ih < 0 || ih >= long(d.h)) continue;
          std::fill(acc, acc + pw, T(0));
          for (std::size_t j = 0; j < 4; ++j) {
            const T *a0 = u + j * tw, *a1 = u + (4 + j) * tw, *a2 = u + (8 + j) * tw,
                    *a3 = u + (12 + j) * tw;
            // Row r of B^T's transpose: (1,0,0,0), (0,1,-1,1), (-1,1,1,0), (0,0,0,-1).
            for (std::size_t tx = 0; tx < tw; ++tx) {
              const T val = r == 0 ? a0[tx]
                          : r == 1 ? a1[tx] - a2[tx] + a3[tx]
                          : r == 2 ? a1[tx] + a2[tx] - a0[tx]
                                   : -a3[tx];
              acc[2 * tx + j] += val;
            }
          }
          T* dst = plane + ih * d.w;
          for (std::size_t k = 0; k < d.w; ++k) dst[k] += acc[k + 1];
        }
      }
    }
}

// y = A^T M A (+ bias) for every tile, A^T = [1 1 1 0; 0 1 -1 -1], cropped to the image.
template <class T>
void transform_output(const Dims& d, const Layout& L, const T* m, std::size_t images,
                      const T* bias, T* y) {
  const std::size_t T_ = images * L.tiles, tw = L.tiles_w;
  T* rows = buffer<T, 1>(2 * 2 * tw);
  for (std::size_t i = 0; i < images; ++i)
    for (std::size_t o = 0; o < d.o; ++o) {
      T* plane = y + (i * d.o + o) * d.h * d.w;
      const T b = bias ? bias[o] : T(0);
      for (std::size_t ty = 0; ty < L.tiles_h; ++ty) {
        const std::size_t t0 = i * L.tiles + ty * tw;
        const T* p[kXi];
        for (std::size_t xi = 0; xi < kXi; ++xi) p[xi] = m + (xi * d.o + o) * T_ + t0;
        T *out0 = rows, *out1 = rows + 2 * tw;
        for (std::size_t tx = 0; tx < tw; ++tx) {
          T q0[4], q1[4];
          for (int c = 0; c < 4; ++c) {
            q0[c] = p[c][tx] + p[4 + c][tx] + p[8 + c][tx];
            q1[c] = p[4 + c][tx] - p[8 + c][tx] - p[12 + c][tx];
          }
          out0[2 * tx] = q0[0] + q0[1] + q0[2] + b;
          out0[2 * tx + 1] = q0[1] - q0[2] - q0[3] + b;
          out1[2 * tx] = q1[0] + q1[1] + q1[2] + b;
          out1[2 * tx + 1] = q1[1] - q1[2] - q1[3] + b;
        }
        std::memcpy(plane + 2 * ty * d.w, out0, d.w * sizeof(T));
        if (2 * ty + 1 < d.h) std::memcpy(plane + (2 * ty + 1) * d.w, out1, d.w * sizeof(T));
      }
    }
}

// The adjoint of transform_output: dM = A dY A^T for every tile's 2x2 gradient (zero
// where the tile hangs over the image).
// Also adds each output channel's gradient sum into bias_grad (when non-null).
template <class T>
void output_grad_to(const Dims& d, const Layout& L, const T* gy, std::size_t images, T* dm,
                    T* bias_grad) {
  const std::size_t T_ = images * L.tiles, tw = L.tiles_w;
  T* rows = buffer<T, 1>(2 * 2 * tw);
  for (std::size_t i = 0; i < images; ++i)
    for (std::size_t o = 0; o < d.o; ++o) {
      const T* plane = gy + (i * d.o + o) * d.h * d.w;
      if (bias_grad) bias_grad[o] += kernels::sum_of(plane, d.h * d.w);
      for (std::size_t ty = 0; ty < L.tiles_h; ++ty) {
        T *g0 = rows, *g1 = rows + 2 * tw;
        std::fill(rows, rows + 4 * tw, T(0));
        std::memcpy(g0, plane + 2 * ty * d.w, d.w * sizeof(T));
        if (2 * ty + 1 < d.h) std::memcpy(g1, plane + (2 * ty + 1) * d.w, d.w * sizeof(T));
        const std::size_t t0 = i * L.tiles + ty * tw;
        T* p[kXi];
        for (std::size_t xi = 0; xi < kXi; ++xi) p[xi] = dm + (xi * d.o + o) * T_ + t0;
        for (std::size_t tx = 0; tx < tw; ++tx) {
          const T a00 = g0[2 * tx], a01 = g0[2 * tx + 1], a10 = g1[2 * tx], a11 = g1[2 * tx + 1];
          const T r[4][2] = {{a00, a01}, {a00 + a10, a01 + a11}, {a00 - a10, a01 - a11}, {-a10, -a11}};
          for (int a = 0; a < 4; ++a) {
            p[4 * a + 0][tx] = r[a][0];
            p[4 * a + 1][tx] = r[a][0] + r[a][1];
            p[4 * a + 2][tx] = r[a][0] - r[a][1];
            p[4 * a + 3][tx] = -r[a][1];
          }
        }
      }
    }
}

}  // namespace

bool applies(std::size_t c, std::size_t o, std::size_t kh, std::size_t kw, std::size_t stride,
             std::size_t pad_h, std::size_t pad_w) {
  return kh == 3 && kw == 3 && stride == 1 && pad_h == 1 && pad_w == 1 && c >= 16 && o >= 16;
}

template <class T>
void forward(const Dims& d, const T* x, const T* weight, const T* bias, T* y) {
  const Layout L(d);
  const std::vector<T> u = transform_weight(d, weight);
  parallel_for(0, L.chunks, [&](std::size_t chunk) {
    const std::size_t first = L.first_image(chunk), images = L.images(d, chunk);
    const int tiles = int(images * L.tiles), C = int(d.c), O = int(d.o);
    T* v = buffer<T, 3>(kXi * d.c * tiles);
    T* m = buffer<T, 4>(kXi * d.o * tiles);
    transform_input(d, L, x + first * d.c * d.h * d.w, images, v);
    for (std::size_t xi = 0; xi < kXi; ++xi)
      blas::gemm<T>(false, false, O, tiles, C, T(1), u.data() + xi * d.o * d.c, C,
                    v + xi * d.c * tiles, tiles, T(0), m + xi * d.o * tiles, tiles);
    transform_output(d, L, m, images, bias, y + first * d.o * d.h * d.w);
  });
}

template <class T>
void backward(const Dims& d, const T* x, const T* weight, const T* gy, T* gx, T* gw, T* gb) {
  if (!gx && !gw && !gb) return;
  const Layout L(d);
  const std::vector<T> u = transform_weight(d, weight);
  // dU is a sum over the batch: each slot of chunks sums into its own copy. A few slots
  // per thread, so a thread slowed down by another process is not waited for long.
  const std::size_t threads = std::size_t(num_threads());
  const std::size_t slots = threads == 1 ? 1 : std::min(L.chunks, 4 * threads);
  const std::size_t du_size = kXi * d.o * d.c;
  std::vector<std::vector<T>> du(gw ? slots : 0), db(gb ? slots : 0);
  parallel_for(0, slots, [&](std::size_t slot) {
    if (gw) du[slot].assign(du_size, T(0));
    if (gb) db[slot].assign(d.o, T(0));
    for (std::size_t chunk = slot * L.chunks / slots; chunk < (slot + 1) * L.chunks / slots; ++chunk) {
      const std::size_t first = L.first_image(chunk), images = L.images(d, chunk);
      const int tiles = int(images * L.tiles), C = int(d.c), O = int(d.o);
      T* v = buffer<T, 3>(kXi * d.c * tiles);
      T* dm = buffer<T, 4>(kXi * d.o * tiles);
      output_grad_to(d, L, gy + first * d.o * d.h * d.w, images, dm, gb ? db[slot].data() : nullptr);
      if (gw) {
        transform_input(d, L, x + first * d.c * d.h * d.w, images, v);
        for (std::size_t xi = 0; xi < kXi; ++xi)
          blas::gemm<T>(false, true, O, C, tiles, T(1), dm + xi * d.o * tiles, tiles,
                        v + xi * d.c * tiles, tiles, T(1), du[slot].data() + xi * d.o * d.c, C);
      }
      if (gx) {
        for (std::size_t xi = 0; xi < kXi; ++xi)  // dV = U^T dM, into v
          blas::gemm<T>(true, false, C, tiles, O, T(1), u.data() + xi * d.o * d.c, C,
                        dm + xi * d.o * tiles, tiles, T(0), v + xi * d.c * tiles, tiles);
        T* gx_chunk = gx + first * d.c * d.h * d.w;
        std::fill(gx_chunk, gx_chunk + images * d.c * d.h * d.w, T(0));
        input_grad_from(d, L, v, images, gx_chunk);
      }
    }
  });
  if (gw) {
    for (std::size_t s = 1; s < slots; ++s)
      for (std::size_t k = 0; k < du_size; ++k) du[0][k] += du[s][k];
    weight_grad_from(d, du[0].data(), gw);
  }
  if (gb) {
    std::fill(gb, gb + d.o, T(0));
    for (const auto& part : db)
      for (std::size_t k = 0; k < d.o; ++k) gb[k] += part[k];
  }
}

#define FLOWGRAD_WINOGRAD(T)                                                              \
  template void forward(const Dims&, const T*, const T*, const T*, T*);                 \
  template void backward(const Dims&, const T*, const T*, const T*, T*, T*, T*);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_WINOGRAD)

}  // namespace flowgrad::winograd
