#include "autograd/winograd.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/instantiate.hpp"
#include "autograd/parallel.hpp"

namespace flowgrad::winograd {

namespace {

constexpr std::size_t kXi = 16;  // positions of a 4x4 tile

// Tiles: output tile (ty, tx) covers output rows 2ty, 2ty+1 and columns 2tx, 2tx+1; its
// 4x4 input patch starts at input (2ty - 1, 2tx - 1). Every row of tiles has one extra
// tile at tx = tiles_w (past the image, all zero): with `half` = tiles_w + 1 tiles per
// row, patch element (a, j) of tile t = ty * half + tx is element t + (a/2) * half + j/2
// of the input's phase (a%2, j%2), where phase (p, q) holds the input at rows 2r + p - 1
// and columns 2m + q - 1. So every transform is one unit-stride loop over the tiles, and
// only the split into phases (and back) touches every other element. The extra tiles
// cost 1/half of the products (7% at 28x28, 12% at 14x14) and keep the loops long.
//
// The batch's tile rows (image i, tile row ty), numbered i * tiles_h + ty, are cut into
// chunks that are transformed and multiplied together, each product having about this
// many columns. Small enough that a chunk's transformed input and products stay in L2:
// Real NVP's step measured 3.86 s with 98-196 tiles per chunk, 4.58 s with 392, 5.95 s
// with 784 (64 channels, 1 thread).
constexpr std::size_t kTilesPerChunk = 112;

struct Layout {
  std::size_t tiles_h, tiles_w;  // per image
  std::size_t half;              // tiles per row, with the extra one: tiles_w + 1
  std::size_t rows_per_chunk;    // tile rows
  explicit Layout(const Dims& d)
      : tiles_h((d.h + 1) / 2), tiles_w((d.w + 1) / 2), half(tiles_w + 1),
        rows_per_chunk(std::max<std::size_t>(1, kTilesPerChunk / half)) {}
};

// Tile rows [begin, end) of the batch; its transformed values sit at [xi][channel][t],
// t = (row - begin) * half + tx.
struct Chunk {
  std::size_t begin, end;
  std::size_t tiles(const Layout& L) const { return (end - begin) * L.half; }
};

// The part of a chunk inside one image: tile rows [ty0, ty0 + rows) of `image`, whose
// tiles start at `offset` in the chunk. Walked with a plain loop, not a callback: a
// lambda's body would not get the SIMD clones of the function it sits in.
struct Segment {
  std::size_t image, ty0, rows, offset, next;  // next: the batch tile row after it
};
inline Segment segment_at(const Layout& L, Chunk ch, std::size_t R) {
  if (R >= ch.end) return {0, 0, 0, 0, R};
  const std::size_t image = R / L.tiles_h, ty0 = R % L.tiles_h;
  const std::size_t rows = std::min(L.tiles_h - ty0, ch.end - R);
  return {image, ty0, rows, (R - ch.begin) * L.half, R + rows};
}
#define FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) \
  for (Segment s = segment_at(L, ch, ch.begin); s.rows; s = segment_at(L, ch, s.next))

// Per-thread buffers that only grow, one per role, reused across calls.
template <class T, int Role>
T* buffer(std::size_t size) {
  thread_local std::vector<T> b;
  if (b.size() < size) b.resize(size);
  return b.data();
}

// The tile transforms are add/subtract loops: compiled also for AVX2 and AVX-512 and
// picked at load time (GCC's target_clones), since the build targets plain x86-64.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FLOWGRAD_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FLOWGRAD_SIMD_CLONES
#endif
// The loops' outputs never alias their inputs (separate buffers), which GCC cannot
// prove with this many pointers: without this it leaves them scalar.
#if defined(__GNUC__) && !defined(__clang__)
#define FLOWGRAD_IVDEP _Pragma("GCC ivdep")
#else
#define FLOWGRAD_IVDEP
#endif

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

// The input planes come from memory (activations written long before), a short run
// of rows per channel: too short for the hardware prefetcher, so the next channel's
// rows are requested while this one's are transformed.
template <class T>
inline void prefetch(const T* from, std::size_t count) {
  const char* p = reinterpret_cast<const char*>(from);
  for (std::size_t b = 0; b < count * sizeof(T); b += 64) __builtin_prefetch(p + b);
}

// Phase q of a row: out[m] = row[2m + q - 1] for m in [0, half), zero outside [0, w);
// a null row is all zeros.
template <class T>
inline void split_row(const T* row, std::size_t w, std::size_t half, T* phase0, T* phase1) {
  const std::size_t n1 = row ? (w + 1) / 2 : 0, n0 = row ? w / 2 : 0;  // row[2m], row[2m + 1]
  phase0[0] = T(0);
  FLOWGRAD_IVDEP
  for (std::size_t m = 0; m < n1; ++m) phase1[m] = row[2 * m];
  FLOWGRAD_IVDEP
  for (std::size_t m = 0; m < n0; ++m) phase0[m + 1] = row[2 * m + 1];
  for (std::size_t m = n1; m < half; ++m) phase1[m] = T(0);
  for (std::size_t m = n0 + 1; m < half; ++m) phase0[m] = T(0);
}

// The adjoint of split_row: row[k] += the phase element it came from.
template <class T>
inline void merge_row_add(const T* phase0, const T* phase1, std::size_t w, T* row) {
  FLOWGRAD_IVDEP
  for (std::size_t m = 0; m < (w + 1) / 2; ++m) row[2 * m] += phase1[m];
  FLOWGRAD_IVDEP
  for (std::size_t m = 0; m < w / 2; ++m) row[2 * m + 1] += phase0[m + 1];
}

// V[xi][c][t] = (B^T d B)[xi] for the 4x4 patch d of every tile t of the chunk, with
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <class T>
FLOWGRAD_SIMD_CLONES void transform_input(const Dims& d, const Layout& L, Chunk ch, const T* x,
                                          T* v) {
  const std::size_t T_ = ch.tiles(L), half = L.half;
  T* phases = buffer<T, 0>(4 * ((L.rows_per_chunk + 1) * half + 1));
  for (std::size_t c = 0; c < d.c; ++c)
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      const T* plane = x + (s.image * d.c + c) * d.h * d.w;
      const std::size_t row_lo = 2 * s.ty0 == 0 ? 0 : 2 * s.ty0 - 1;
      const std::size_t row_hi = std::min(d.h, 2 * (s.ty0 + s.rows) + 2);
      if (c + 1 < d.c) prefetch(plane + d.h * d.w + row_lo * d.w, (row_hi - row_lo) * d.w);
      // Phase rows, plus one zero that the last (extra) tile reads past the end.
      const std::size_t rows = s.rows + 1, stride = rows * half + 1;
      for (std::size_t p = 0; p < 4; ++p) phases[p * stride + rows * half] = T(0);
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t p = 0; p < 2; ++p) {
          const long ih = long(2 * (s.ty0 + r) + p) - 1;
          const T* row = ih >= 0 && ih < long(d.h) ? plane + ih * d.w : nullptr;
          split_row(row, d.w, half, phases + (2 * p) * stride + r * half,
                    phases + (2 * p + 1) * stride + r * half);
        }
      const T *p00 = phases, *p01 = p00 + stride, *p10 = p01 + stride, *p11 = p10 + stride;
      T* out[kXi];
      for (std::size_t xi = 0; xi < kXi; ++xi) out[xi] = v + (xi * d.c + c) * T_ + s.offset;
      FLOWGRAD_IVDEP
      for (std::size_t t = 0; t < s.rows * half; ++t) {
        // Patch row a, columns 0..3: phases (a%2, 0), (a%2, 1), then the same one tile on.
        T dd[4][4];
        for (int a = 0; a < 4; ++a) {
          const T* q0 = a % 2 ? p10 : p00;
          const T* q1 = a % 2 ? p11 : p01;
          const std::size_t at = t + (a / 2) * half;
          dd[a][0] = q0[at];
          dd[a][1] = q1[at];
          dd[a][2] = q0[at + 1];
          dd[a][3] = q1[at + 1];
        }
        T e[4][4];  // B^T d
        for (int j = 0; j < 4; ++j) {
          e[0][j] = dd[0][j] - dd[2][j];
          e[1][j] = dd[1][j] + dd[2][j];
          e[2][j] = dd[2][j] - dd[1][j];
          e[3][j] = dd[1][j] - dd[3][j];
        }
        for (int a = 0; a < 4; ++a) {  // (B^T d) B
          out[4 * a + 0][t] = e[a][0] - e[a][2];
          out[4 * a + 1][t] = e[a][1] + e[a][2];
          out[4 * a + 2][t] = e[a][2] - e[a][1];
          out[4 * a + 3][t] = e[a][1] - e[a][3];
        }
      }
    }
}

// The adjoint of transform_input: x_grad += B dV B^T of every tile at its patch. Patches
// overlap, so the 16 contributions are first stored, then added phase by phase, one
// offset at a time (each loop then writes distinct elements).
template <class T>
FLOWGRAD_SIMD_CLONES void input_grad_from(const Dims& d, const Layout& L, Chunk ch, const T* dv,
                                          T* gx) {
  const std::size_t T_ = ch.tiles(L), half = L.half;
  T* phases = buffer<T, 0>(4 * ((L.rows_per_chunk + 1) * half + 1));
  T* dd = buffer<T, 1>(kXi * L.rows_per_chunk * half);  // dd[a][j][t]
  for (std::size_t c = 0; c < d.c; ++c)
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      // As in transform_input: the last (extra) tile adds its zeros one past the rows.
      const std::size_t n = s.rows * half, rows = s.rows + 1, stride = rows * half + 1;
      const T* in[kXi];
      for (std::size_t xi = 0; xi < kXi; ++xi) in[xi] = dv + (xi * d.c + c) * T_ + s.offset;
      FLOWGRAD_IVDEP
      for (std::size_t t = 0; t < n; ++t) {
        T u[4][4];  // dV B^T: B's rows are (1,0,0,0), (0,1,-1,1), (-1,1,1,0), (0,0,0,-1)
        for (int a = 0; a < 4; ++a) {
          const T v0 = in[4 * a][t], v1 = in[4 * a + 1][t], v2 = in[4 * a + 2][t], v3 = in[4 * a + 3][t];
          u[a][0] = v0;
          u[a][1] = v1 - v2 + v3;
          u[a][2] = v1 + v2 - v0;
          u[a][3] = -v3;
        }
        for (int j = 0; j < 4; ++j) {  // B (dV B^T)
          dd[(0 * 4 + j) * n + t] = u[0][j];
          dd[(1 * 4 + j) * n + t] = u[1][j] - u[2][j] + u[3][j];
          dd[(2 * 4 + j) * n + t] = u[1][j] + u[2][j] - u[0][j];
          dd[(3 * 4 + j) * n + t] = -u[3][j];
        }
      }
      std::fill(phases, phases + 4 * stride, T(0));
      for (std::size_t a = 0; a < 4; ++a)
        for (std::size_t j = 0; j < 4; ++j) {
          T* dst = phases + (2 * (a % 2) + j % 2) * stride + (a / 2) * half + j / 2;
          const T* src = dd + (a * 4 + j) * n;
          FLOWGRAD_IVDEP
          for (std::size_t t = 0; t < n; ++t) dst[t] += src[t];
        }
      T* plane = gx + (s.image * d.c + c) * d.h * d.w;
      {
        const std::size_t row_lo = 2 * s.ty0 == 0 ? 0 : 2 * s.ty0 - 1;
        const std::size_t row_hi = std::min(d.h, 2 * (s.ty0 + s.rows) + 2);
        if (c + 1 < d.c) prefetch(plane + d.h * d.w + row_lo * d.w, (row_hi - row_lo) * d.w);
      }
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t p = 0; p < 2; ++p) {
          const long ih = long(2 * (s.ty0 + r) + p) - 1;
          if (ih < 0 || ih >= long(d.h)) continue;
          merge_row_add(phases + (2 * p) * stride + r * half, phases + (2 * p + 1) * stride + r * half,
                        d.w, plane + ih * d.w);
        }
    }
}

// y = A^T M A (+ bias) for every tile, A^T = [1 1 1 0; 0 1 -1 -1], cropped to the image.
template <class T>
FLOWGRAD_SIMD_CLONES void transform_output(const Dims& d, const Layout& L, Chunk ch, const T* m,
                                           const T* bias, T* y) {
  const std::size_t T_ = ch.tiles(L), half = L.half;
  T* phases = buffer<T, 0>(4 * L.rows_per_chunk * half);  // output phase (r, s): rows 2ty + r, columns 2tx + s
  for (std::size_t o = 0; o < d.o; ++o) {
    const T b = bias ? bias[o] : T(0);
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      const std::size_t n = s.rows * half;
      const T* in[kXi];
      for (std::size_t xi = 0; xi < kXi; ++xi) in[xi] = m + (xi * d.o + o) * T_ + s.offset;
      T *y00 = phases, *y01 = y00 + n, *y10 = y01 + n, *y11 = y10 + n;
      FLOWGRAD_IVDEP
      for (std::size_t t = 0; t < n; ++t) {
        T q0[4], q1[4];  // A^T M
        for (int j = 0; j < 4; ++j) {
          q0[j] = in[j][t] + in[4 + j][t] + in[8 + j][t];
          q1[j] = in[4 + j][t] - in[8 + j][t] - in[12 + j][t];
        }
        y00[t] = q0[0] + q0[1] + q0[2] + b;
        y01[t] = q0[1] - q0[2] - q0[3] + b;
        y10[t] = q1[0] + q1[1] + q1[2] + b;
        y11[t] = q1[1] - q1[2] - q1[3] + b;
      }
      T* plane = y + (s.image * d.o + o) * d.h * d.w;
      for (std::size_t r = 0; r < s.rows; ++r)
        for (std::size_t p = 0; p < 2; ++p) {
          const std::size_t oh = 2 * (s.ty0 + r) + p;
          if (oh >= d.h) continue;
          const T* even = (p ? y10 : y00) + r * half;  // columns 2tx
          const T* odd = (p ? y11 : y01) + r * half;   // columns 2tx + 1
          T* out = plane + oh * d.w;
          FLOWGRAD_IVDEP
          for (std::size_t tx = 0; tx < d.w / 2; ++tx) {
            out[2 * tx] = even[tx];
            out[2 * tx + 1] = odd[tx];
          }
          if (d.w % 2) out[d.w - 1] = even[d.w / 2];
        }
    }
  }
}

// The adjoint of transform_output: dM = A dY A^T for every tile's 2x2 gradient (zero
// where the tile hangs over the image). Also adds each output channel's gradient sum
// over the chunk's rows into bias_grad (when non-null).
template <class T>
FLOWGRAD_SIMD_CLONES void output_grad_to(const Dims& d, const Layout& L, Chunk ch, const T* gy,
                                         T* dm, T* bias_grad) {
  const std::size_t T_ = ch.tiles(L), half = L.half;
  T* phases = buffer<T, 0>(4 * L.rows_per_chunk * half);
  for (std::size_t o = 0; o < d.o; ++o)
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      const std::size_t n = s.rows * half;
      T *g00 = phases, *g01 = g00 + n, *g10 = g01 + n, *g11 = g10 + n;
      const T* plane = gy + (s.image * d.o + o) * d.h * d.w;
      if (o + 1 < d.o)
        prefetch(plane + (d.h + 2 * s.ty0) * d.w, std::min(d.h - 2 * s.ty0, 2 * s.rows) * d.w);
      T sum = 0;
      for (std::size_t r = 0; r < s.rows; ++r)
        for (std::size_t p = 0; p < 2; ++p) {
          T* even = (p ? g10 : g00) + r * half;
          T* odd = (p ? g11 : g01) + r * half;
          const std::size_t oh = 2 * (s.ty0 + r) + p;
          const std::size_t n_even = oh < d.h ? (d.w + 1) / 2 : 0, n_odd = oh < d.h ? d.w / 2 : 0;
          const T* row = plane + oh * d.w;
          FLOWGRAD_IVDEP
          for (std::size_t tx = 0; tx < n_odd; ++tx) {
            even[tx] = row[2 * tx];
            odd[tx] = row[2 * tx + 1];
          }
          if (n_even > n_odd) even[n_odd] = row[d.w - 1];
          for (std::size_t tx = n_even; tx < half; ++tx) even[tx] = T(0);
          for (std::size_t tx = n_odd; tx < half; ++tx) odd[tx] = T(0);
          if (bias_grad)
            for (std::size_t k = 0; k < n_even + n_odd; ++k) sum += row[k];
        }
      if (bias_grad) bias_grad[o] += sum;
      T* out[kXi];
      for (std::size_t xi = 0; xi < kXi; ++xi) out[xi] = dm + (xi * d.o + o) * T_ + s.offset;
      FLOWGRAD_IVDEP
      for (std::size_t t = 0; t < n; ++t) {
        // Rows of A dY: g0, g0 + g1, g0 - g1, -g1; then the same on columns.
        const T r[4][2] = {{g00[t], g01[t]},
                           {g00[t] + g10[t], g01[t] + g11[t]},
                           {g00[t] - g10[t], g01[t] - g11[t]},
                           {-g10[t], -g11[t]}};
        for (int a = 0; a < 4; ++a) {
          out[4 * a + 0][t] = r[a][0];
          out[4 * a + 1][t] = r[a][0] + r[a][1];
          out[4 * a + 2][t] = r[a][0] - r[a][1];
          out[4 * a + 3][t] = -r[a][1];
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
  const std::size_t rows = d.n * L.tiles_h, chunks = (rows + L.rows_per_chunk - 1) / L.rows_per_chunk;
  // Chunks write disjoint output rows (a tile row owns its two image rows).
  parallel_for(0, chunks, [&](std::size_t k) {
    const Chunk ch{k * L.rows_per_chunk, std::min(rows, (k + 1) * L.rows_per_chunk)};
    const int tiles = int(ch.tiles(L)), C = int(d.c), O = int(d.o);
    T* v = buffer<T, 3>(kXi * d.c * tiles);
    T* m = buffer<T, 4>(kXi * d.o * tiles);
    transform_input(d, L, ch, x, v);
    for (std::size_t xi = 0; xi < kXi; ++xi)
      blas::gemm<T>(false, false, O, tiles, C, T(1), u.data() + xi * d.o * d.c, C,
                    v + xi * d.c * tiles, tiles, T(0), m + xi * d.o * tiles, tiles);
    transform_output(d, L, ch, m, bias, y);
  });
}

template <class T>
void backward(const Dims& d, const T* x, const T* weight, const T* gy, T* gx, T* gw, T* gb) {
  if (!gx && !gw && !gb) return;
  const Layout L(d);
  const std::vector<T> u = transform_weight(d, weight);
  // Slots of whole images run in parallel (input-gradient patches overlap between tile
  // rows, never between images); each slot walks its tile rows chunk by chunk and sums
  // dU and db into its own copy. A few slots per thread, so a thread slowed down by
  // another process is not waited for long.
  const std::size_t threads = std::size_t(num_threads());
  const std::size_t slots = std::max<std::size_t>(1, std::min(d.n, threads == 1 ? 1 : 4 * threads));
  const std::size_t du_size = kXi * d.o * d.c;
  std::vector<std::vector<T>> du(gw ? slots : 0), db(gb ? slots : 0);
  parallel_for(0, slots, [&](std::size_t slot) {
    if (gw) du[slot].assign(du_size, T(0));
    if (gb) db[slot].assign(d.o, T(0));
    const std::size_t first = slot * d.n / slots, last = (slot + 1) * d.n / slots;
    if (gx) std::fill(gx + first * d.c * d.h * d.w, gx + last * d.c * d.h * d.w, T(0));
    for (std::size_t R = first * L.tiles_h; R < last * L.tiles_h; R += L.rows_per_chunk) {
      const Chunk ch{R, std::min(last * L.tiles_h, R + L.rows_per_chunk)};
      const int tiles = int(ch.tiles(L)), C = int(d.c), O = int(d.o);
      T* v = buffer<T, 3>(kXi * d.c * tiles);
      T* dm = buffer<T, 4>(kXi * d.o * tiles);
      output_grad_to(d, L, ch, gy, dm, gb ? db[slot].data() : nullptr);
      if (gw) {
        transform_input(d, L, ch, x, v);
        for (std::size_t xi = 0; xi < kXi; ++xi)
          blas::gemm<T>(false, true, O, C, tiles, T(1), dm + xi * d.o * tiles, tiles,
                        v + xi * d.c * tiles, tiles, T(1), du[slot].data() + xi * d.o * d.c, C);
      }
      if (gx) {
        for (std::size_t xi = 0; xi < kXi; ++xi)  // dV = U^T dM, into v
          blas::gemm<T>(true, false, C, tiles, O, T(1), u.data() + xi * d.o * d.c, C,
                        dm + xi * d.o * tiles, tiles, T(0), v + xi * d.c * tiles, tiles);
        input_grad_from(d, L, ch, v, gx);
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
