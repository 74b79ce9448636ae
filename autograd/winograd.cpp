#include "autograd/winograd.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "autograd/instantiate.hpp"
#include "autograd/kernels.hpp"
#include "autograd/parallel.hpp"
#include "autograd/simd.hpp"
#include "autograd/small_gemm.hpp"

namespace flowgrad::winograd {

namespace {

// F(m x m, 3 x 3): an m x m output tile from an (m + 2) x (m + 2) input patch,
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A,
// with the matrices of Lavin & Gray (interpolation points 0, -1, 1 for m = 2, and
// 0, 1, -1, 2, -2 for m = 4; the last row is the point at infinity).
template <int M>
struct Minimal;
template <>
struct Minimal<2> {
  static constexpr int m = 2, alpha = 4;
  static constexpr double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr double G[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
  static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};
template <>
struct Minimal<4> {
  static constexpr int m = 4, alpha = 6;
  static constexpr double BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0},
                                      {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0},
                                      {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr double G[6][3] = {{1. / 4, 0, 0},           {-1. / 6, -1. / 6, -1. / 6},
                                     {-1. / 6, 1. / 6, -1. / 6}, {1. / 24, 1. / 12, 1. / 6},
                                     {1. / 24, -1. / 12, 1. / 6}, {0, 0, 1}};
  static constexpr double AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};

// out[i] = sum_k mat[i][k] in[k] (or, transposed, sum_k mat[k][i] in[k]) for a small
// constant matrix: unrolled, and a zero coefficient costs nothing (so B^T d is the
// handful of adds it is on paper, not a dense 6 x 6 product).
template <bool Transposed, int Rows, int Cols, class T>
inline void apply(const double (&mat)[Rows][Cols], const T* in, T* out) {
  constexpr int n_out = Transposed ? Cols : Rows, n_in = Transposed ? Rows : Cols;
#pragma GCC unroll 64
  for (int i = 0; i < n_out; ++i) {
    T acc = T(0);
#pragma GCC unroll 64
    for (int k = 0; k < n_in; ++k) {
      const double c = Transposed ? mat[k][i] : mat[i][k];
      if (c == 1) acc += in[k];
      else if (c == -1) acc -= in[k];
      else if (c != 0) acc += T(c) * in[k];
    }
    out[i] = acc;
  }
}

// out = K in K^T with K = mat, or mat^T when Transposed: every transform of a tile (and
// of a filter) has this form. A column at a time, then a row at a time.
template <bool Transposed, int Rows, int Cols, class T, int N = Transposed ? Rows : Cols,
          int P = Transposed ? Cols : Rows>
inline void sandwich(const double (&mat)[Rows][Cols], const T (&in)[N][N], T (&out)[P][P]) {
  T left[P][N], col[N], res[P];  // left = K in
#pragma GCC unroll 64
  for (int j = 0; j < N; ++j) {
#pragma GCC unroll 64
    for (int i = 0; i < N; ++i) col[i] = in[i][j];
    apply<Transposed>(mat, col, res);
#pragma GCC unroll 64
    for (int a = 0; a < P; ++a) left[a][j] = res[a];
  }
#pragma GCC unroll 64
  for (int a = 0; a < P; ++a) apply<Transposed>(mat, left[a], out[a]);
}

// Tiles: output tile (ty, tx) covers output rows m ty .. m ty + m - 1 (columns alike); its
// input patch starts at input (m ty - 1, m tx - 1). Every row of tiles has one extra
// tile at tx = tiles_w (past the image, all zero): with `half` = tiles_w + 1 tiles per
// row, patch element (a, j) of tile t = ty * half + tx is element t + (a/m) * half + j/m
// of the input's phase (a%m, j%m), where phase (p, q) holds the input at rows m r + p - 1
// and columns m k + q - 1. So every transform is one unit-stride loop over the tiles, and
// only the split into phases (and back) touches every m-th element. The extra tiles cost
// 1/half of the products and keep the loops long.
//
// The batch's tile rows (image i, tile row ty), numbered i * tiles_h + ty, are cut into
// chunks that are transformed and multiplied together. A chunk's transformed input
// (alpha^2 x channels x tiles) is kept to about this many bytes, so that it and the
// products stay in L2: Real NVP's step (F(2x2, 3x3), 64 channels, 1 thread) measured
// 3.86 s with 98-196 tiles per chunk (400-800 KB), 4.58 s with 392, 5.95 s with 784.
constexpr std::size_t kChunkBytes = std::size_t(448) << 10;

struct Layout {
  std::size_t m;                 // output tile size
  std::size_t tiles_h, tiles_w;  // per image
  std::size_t half;              // tiles per row, with the extra one: tiles_w + 1
  std::size_t rows_per_chunk;    // tile rows
  Layout(const Dims& d, std::size_t tile, std::size_t tile_bytes)
      : m(tile), tiles_h((d.h + tile - 1) / tile), tiles_w((d.w + tile - 1) / tile),
        half(tiles_w + 1), rows_per_chunk(std::max<std::size_t>(1, kChunkBytes / tile_bytes / half)) {}
  // Elements of one phase of a chunk's input: its rows plus one, and one zero that the
  // last (extra) tile reads past the end.
  std::size_t phase_size() const { return (rows_per_chunk + 1) * half + 1; }
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

// Roles of the per-thread scratch buffers (kernels::scratch): buffers in use at the same
// time have different roles.
enum ScratchRole { kPhases, kContributions, kTransformed, kProducts, kTransposed, kPart };

// rows[xi] = where the chunk's values of patch position xi for `channel` start, in an
// array laid out [xi][channel][tile] with `tiles` tiles per row, plus the segment's offset.
template <class P, std::size_t N>
inline void position_rows(P* base, std::size_t channels, std::size_t channel, std::size_t tiles,
                          std::size_t offset, P* (&rows)[N]) {
  for (std::size_t xi = 0; xi < N; ++xi) rows[xi] = base + (xi * channels + channel) * tiles + offset;
}

// The input planes come from memory (activations written long before), a short run
// of rows per channel: too short for the hardware prefetcher, so the next channel's
// rows are requested while this one's are transformed.
template <class T>
inline void prefetch(const T* from, std::size_t count) {
  const char* p = reinterpret_cast<const char*>(from);
  for (std::size_t b = 0; b < count * sizeof(T); b += 64) __builtin_prefetch(p + b);
}

// to[i] += from[i], widened to double.
template <class T>
FLOWGRAD_SIMD_CLONES void add_into(const T* from, std::size_t n, double* to) {
  for (std::size_t i = 0; i < n; ++i) to[i] += double(from[i]);
}

// The image rows a segment's patches read: [lo, hi).
inline void patch_rows(const Layout& L, const Segment& s, std::size_t h, std::size_t& lo,
                       std::size_t& hi) {
  lo = L.m * s.ty0 == 0 ? 0 : L.m * s.ty0 - 1;
  hi = std::min(h, L.m * (s.ty0 + s.rows) + 2);
}

// Filters per piece of work when the filter transforms are spread over the threads.
constexpr std::size_t kFiltersPerPiece = 256;

// Filters transformed together, so that U's rows (oc apart: 16 KB for 64 x 64, which
// maps every row to the same cache sets) are written a cache line at a time, not a
// float at a time (their share of Real NVP's step 2.9% -> 0.5%).
constexpr std::size_t kFilterBlock = 16;

// U[xi][o][c] = (G g G^T)[xi] for g = weight[o][c].
template <class W, class T>
std::vector<T> transform_weight(const Dims& d, const T* weight) {
  constexpr int A = W::alpha;
  const std::size_t oc = d.o * d.c;
  std::vector<T> u(std::size_t(A * A) * oc);
  // On the threads: done serially, it was 1-2% of a 2-thread Real NVP step.
  kernels::for_range(oc, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t k0 = lo; k0 < hi; k0 += kFilterBlock) {
      const std::size_t n = std::min(kFilterBlock, hi - k0);
      T out[kFilterBlock][A][A];
      for (std::size_t b = 0; b < n; ++b) {
        T g[3][3];
        for (int i = 0; i < 9; ++i) g[i / 3][i % 3] = weight[9 * (k0 + b) + i];
        sandwich<false>(W::G, g, out[b]);
      }
      for (int xi = 0; xi < A * A; ++xi)
        for (std::size_t b = 0; b < n; ++b) u[std::size_t(xi) * oc + k0 + b] = out[b][xi / A][xi % A];
    }
  }, kFiltersPerPiece);
  return u;
}

// The adjoint: dg = G^T dU G, written to grad[o][c][3][3] (dU summed in double).
template <class W, class T>
void weight_grad_from(const Dims& d, const double* du, T* grad) {
  constexpr int A = W::alpha;
  const std::size_t oc = d.o * d.c;
  kernels::for_range(oc, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t k0 = lo; k0 < hi; k0 += kFilterBlock) {
      const std::size_t n = std::min(kFilterBlock, hi - k0);
      double in[kFilterBlock][A][A];
      for (int xi = 0; xi < A * A; ++xi)
        for (std::size_t b = 0; b < n; ++b) in[b][xi / A][xi % A] = du[std::size_t(xi) * oc + k0 + b];
      for (std::size_t b = 0; b < n; ++b) {
        double g[3][3];
        sandwich<true>(W::G, in[b], g);
        for (int i = 0; i < 9; ++i) grad[9 * (k0 + b) + i] = T(g[i / 3][i % 3]);
      }
    }
  }, kFiltersPerPiece);
}

// Phase q of a row: out_q[k] = row[m k + q - 1] for k in [0, half), zero outside [0, w);
// a null row is all zeros.
template <int M, class T>
inline void split_row(const T* row, std::size_t w, std::size_t half, T* const* out) {
  for (int q = 0; q < M; ++q) {
    T* o = out[q];
    std::size_t k = 0;
    if (q == 0) o[k++] = T(0);  // column -1
    if (row) {
      const std::size_t first = M * k + q - 1, n = first < w ? (w - first + M - 1) / M : 0;
      const T* src = row + first;
      T* dst = o + k;
      FLOWGRAD_IVDEP
      for (std::size_t i = 0; i < n; ++i) dst[i] = src[M * i];
      k += n;
    }
    for (; k < half; ++k) o[k] = T(0);
  }
}

// The adjoint of split_row: row[c] += the phase element it came from.
template <int M, class T>
inline void merge_row_add(const T* const* in, std::size_t w, T* row) {
  for (int q = 0; q < M; ++q) {
    const std::size_t k0 = q == 0 ? 1 : 0, first = M * k0 + q - 1;
    if (first >= w) continue;
    const std::size_t n = (w - first + M - 1) / M;
    const T* src = in[q] + k0;
    T* dst = row + first;
    FLOWGRAD_IVDEP
    for (std::size_t i = 0; i < n; ++i) dst[M * i] += src[i];
  }
}

// V[xi][c][t] = (B^T d B)[xi] for the patch d of every tile t of the chunk.
template <class W, class T>
FLOWGRAD_SIMD_CLONES void transform_input(const Dims& d, const Layout& L, Chunk ch, const T* x,
                                          T* v) {
  constexpr int M = W::m, A = W::alpha;
  const std::size_t T_ = ch.tiles(L), half = L.half, stride = L.phase_size();
  T* phases = kernels::scratch<T, kPhases>(M * M * stride);
  for (std::size_t c = 0; c < d.c; ++c) {
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      const T* plane = x + (s.image * d.c + c) * d.h * d.w;
      std::size_t lo, hi;
      patch_rows(L, s, d.h, lo, hi);
      if (c + 1 < d.c) prefetch(plane + d.h * d.w + lo * d.w, (hi - lo) * d.w);
      const std::size_t rows = s.rows + 1;
      for (std::size_t p = 0; p < M * M; ++p) phases[p * stride + rows * half] = T(0);
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t p = 0; p < M; ++p) {
          const long ih = long(M * (s.ty0 + r) + p) - 1;
          const T* row = ih >= 0 && ih < long(d.h) ? plane + ih * d.w : nullptr;
          T* out[M];
          for (int q = 0; q < M; ++q) out[q] = phases + (p * M + q) * stride + r * half;
          split_row<M>(row, d.w, half, out);
        }
      T* out[A * A];
      position_rows(v, d.c, c, T_, s.offset, out);
      FLOWGRAD_IVDEP
      for (std::size_t t = 0; t < s.rows * half; ++t) {
        T patch[A][A], vt[A][A];
#pragma GCC unroll 64
        for (int a = 0; a < A; ++a)
#pragma GCC unroll 64
          for (int j = 0; j < A; ++j)
            patch[a][j] = phases[((a % M) * M + j % M) * stride + t + (a / M) * half + j / M];
        sandwich<false>(W::BT, patch, vt);  // B^T d B
#pragma GCC unroll 64
        for (int xi = 0; xi < A * A; ++xi) out[xi][t] = vt[xi / A][xi % A];
      }
    }
  }
}

// The adjoint of transform_input: x_grad += B dV B^T of every tile at its patch. Patches
// overlap, so the contributions are first stored, then added phase by phase, one patch
// element at a time (each loop then writes distinct elements).
template <class W, class T>
FLOWGRAD_SIMD_CLONES void input_grad_from(const Dims& d, const Layout& L, Chunk ch, const T* dv,
                                          T* gx) {
  constexpr int M = W::m, A = W::alpha;
  const std::size_t T_ = ch.tiles(L), half = L.half, stride = L.phase_size();
  T* phases = kernels::scratch<T, kPhases>(M * M * stride);
  T* dd = kernels::scratch<T, kContributions>(A * A * L.rows_per_chunk * half);  // dd[a][j][t]
  for (std::size_t c = 0; c < d.c; ++c)
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      const std::size_t n = s.rows * half, rows = s.rows + 1;
      const T* in[A * A];
      position_rows(dv, d.c, c, T_, s.offset, in);
      FLOWGRAD_IVDEP
      for (std::size_t t = 0; t < n; ++t) {
        T dvt[A][A], ddt[A][A];
#pragma GCC unroll 64
        for (int xi = 0; xi < A * A; ++xi) dvt[xi / A][xi % A] = in[xi][t];
        sandwich<true>(W::BT, dvt, ddt);  // B dV B^T
#pragma GCC unroll 64
        for (int xi = 0; xi < A * A; ++xi) dd[xi * n + t] = ddt[xi / A][xi % A];
      }
      std::fill(phases, phases + M * M * stride, T(0));
      for (int a = 0; a < A; ++a)
        for (int j = 0; j < A; ++j) {
          T* dst = phases + ((a % M) * M + j % M) * stride + (a / M) * half + j / M;
          const T* src = dd + (a * A + j) * n;
          FLOWGRAD_IVDEP
          for (std::size_t t = 0; t < n; ++t) dst[t] += src[t];
        }
      T* plane = gx + (s.image * d.c + c) * d.h * d.w;
      std::size_t lo, hi;
      patch_rows(L, s, d.h, lo, hi);
      if (c + 1 < d.c) prefetch(plane + d.h * d.w + lo * d.w, (hi - lo) * d.w);
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t p = 0; p < M; ++p) {
          const long ih = long(M * (s.ty0 + r) + p) - 1;
          if (ih < 0 || ih >= long(d.h)) continue;
          const T* in_phases[M];
          for (int q = 0; q < M; ++q) in_phases[q] = phases + (p * M + q) * stride + r * half;
          merge_row_add<M>(in_phases, d.w, plane + ih * d.w);
        }
    }
}

// y = A^T M A (+ bias) for every tile, cropped to the image.
template <class W, class T>
FLOWGRAD_SIMD_CLONES void transform_output(const Dims& d, const Layout& L, Chunk ch, const T* mm,
                                           const T* bias, T* y) {
  constexpr int M = W::m, A = W::alpha;
  const std::size_t T_ = ch.tiles(L), half = L.half, n_max = L.rows_per_chunk * half;
  T* phases = kernels::scratch<T, kPhases>(M * M * n_max);  // output phase (r, s): rows m ty + r, columns m tx + s
  for (std::size_t o = 0; o < d.o; ++o) {
    const T b = bias ? bias[o] : T(0);
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      const std::size_t n = s.rows * half;
      const T* in[A * A];
      position_rows(mm, d.o, o, T_, s.offset, in);
      FLOWGRAD_IVDEP
      for (std::size_t t = 0; t < n; ++t) {
        T mt[A][A], yt[M][M];
#pragma GCC unroll 64
        for (int xi = 0; xi < A * A; ++xi) mt[xi / A][xi % A] = in[xi][t];
        sandwich<false>(W::AT, mt, yt);  // A^T M A
#pragma GCC unroll 64
        for (int k = 0; k < M * M; ++k) phases[k * n_max + t] = yt[k / M][k % M] + b;
      }
      T* plane = y + (s.image * d.o + o) * d.h * d.w;
      for (std::size_t r = 0; r < s.rows; ++r)
        for (std::size_t p = 0; p < M; ++p) {
          const std::size_t oh = M * (s.ty0 + r) + p;
          if (oh >= d.h) continue;
          T* out = plane + oh * d.w;
          for (std::size_t q = 0; q < M && q < d.w; ++q) {
            const T* src = phases + (p * M + q) * n_max + r * half;
            const std::size_t cnt = (d.w - q + M - 1) / M;
            FLOWGRAD_IVDEP
            for (std::size_t tx = 0; tx < cnt; ++tx) out[M * tx + q] = src[tx];
          }
        }
    }
  }
}

// The adjoint of transform_output: dM = A dY A^T for every tile's gradient (zero where
// the tile hangs over the image). Also adds each output channel's gradient sum over the
// chunk's rows into bias_grad (when non-null).
template <class W, class T>
FLOWGRAD_SIMD_CLONES void output_grad_to(const Dims& d, const Layout& L, Chunk ch, const T* gy,
                                         T* dm, T* bias_grad) {
  constexpr int M = W::m, A = W::alpha;
  const std::size_t T_ = ch.tiles(L), half = L.half, n_max = L.rows_per_chunk * half;
  T* phases = kernels::scratch<T, kPhases>(M * M * n_max);
  for (std::size_t o = 0; o < d.o; ++o) {
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      const std::size_t n = s.rows * half;
      const std::size_t row_lo = M * s.ty0, row_hi = std::min(d.h, M * (s.ty0 + s.rows));
      const T* plane = gy + (s.image * d.o + o) * d.h * d.w;
      if (o + 1 < d.o) prefetch(plane + (d.h + row_lo) * d.w, (row_hi - row_lo) * d.w);
      for (std::size_t r = 0; r < s.rows; ++r)
        for (std::size_t p = 0; p < M; ++p) {
          const std::size_t oh = M * (s.ty0 + r) + p;
          const T* row = plane + oh * d.w;
          for (std::size_t q = 0; q < M; ++q) {
            T* dst = phases + (p * M + q) * n_max + r * half;
            const std::size_t cnt = oh < d.h && q < d.w ? (d.w - q + M - 1) / M : 0;
            FLOWGRAD_IVDEP
            for (std::size_t tx = 0; tx < cnt; ++tx) dst[tx] = row[M * tx + q];
            for (std::size_t tx = cnt; tx < half; ++tx) dst[tx] = T(0);
          }
        }
      if (bias_grad) bias_grad[o] += kernels::sum_of(plane + row_lo * d.w, (row_hi - row_lo) * d.w);
      T* out[A * A];
      position_rows(dm, d.o, o, T_, s.offset, out);
      FLOWGRAD_IVDEP
      for (std::size_t t = 0; t < n; ++t) {
        T g[M][M], dmt[A][A];
#pragma GCC unroll 64
        for (int k = 0; k < M * M; ++k) g[k / M][k % M] = phases[k * n_max + t];
        sandwich<true>(W::AT, g, dmt);  // A dY A^T
#pragma GCC unroll 64
        for (int xi = 0; xi < A * A; ++xi) out[xi][t] = dmt[xi / A][xi % A];
      }
    }
  }
}

// dU (O x C, in double) += dM V^T over a chunk's tiles, dM (O x tiles) and V (C x tiles)
// row-major. V is transposed into `vt` (tiles x C) so that the kernel reads its rows (n k
// of the product's 2 m n k). The weight gradient sums every tile of the batch, and one
// float32 chain over them cost F(4x4, 3x3) twice its accuracy: here the chunk's sum is
// float32 sums of kSumTiles products each, added in `part`, and the chunks' in double.
constexpr int kSumTiles = 16;
template <class T>
void weight_product_add(int O, int C, int tiles, const T* dm, const T* v, T* vt, T* part,
                        double* du) {
  small_gemm::transpose(C, tiles, v, tiles, vt, C);
  for (int t0 = 0; t0 < tiles; t0 += kSumTiles)
    small_gemm::multiply(O, C, std::min(kSumTiles, tiles - t0), dm + t0, tiles, 1,
                         vt + long(t0) * C, C, part, C, t0 > 0);
  add_into(part, std::size_t(O) * C, du);
}

template <class W, class T>
void forward_with(const Dims& d, const T* x, const T* weight, const T* bias, T* y) {
  constexpr std::size_t kXi = W::alpha * W::alpha;
  const Layout L(d, W::m, kXi * std::max(d.c, d.o) * sizeof(T));
  const std::vector<T> u = transform_weight<W>(d, weight);
  const std::size_t rows = d.n * L.tiles_h, chunks = (rows + L.rows_per_chunk - 1) / L.rows_per_chunk;
  // Chunks write disjoint output rows (a tile row owns its m image rows).
  parallel_for(0, chunks, [&](std::size_t k) {
    const Chunk ch{k * L.rows_per_chunk, std::min(rows, (k + 1) * L.rows_per_chunk)};
    const int tiles = int(ch.tiles(L)), C = int(d.c), O = int(d.o);
    T* v = kernels::scratch<T, kTransformed>(kXi * d.c * tiles);
    T* m = kernels::scratch<T, kProducts>(kXi * d.o * tiles);
    transform_input<W>(d, L, ch, x, v);
    for (std::size_t xi = 0; xi < kXi; ++xi)
      small_gemm::multiply(O, tiles, C, u.data() + xi * d.o * d.c, C, 1, v + xi * d.c * tiles,
                           tiles, m + xi * d.o * tiles, tiles, false);
    transform_output<W>(d, L, ch, m, bias, y);
  });
}

template <class W, class T>
void backward_with(const Dims& d, const T* x, const T* weight, const T* gy, T* gx, T* gw, T* gb) {
  constexpr std::size_t kXi = W::alpha * W::alpha;
  const Layout L(d, W::m, kXi * std::max(d.c, d.o) * sizeof(T));
  const std::vector<T> u = transform_weight<W>(d, weight);
  // Slots of whole images run in parallel (input-gradient patches overlap between tile
  // rows, never between images); each slot walks its tile rows chunk by chunk and sums
  // dU and db into its own copy. A few slots per thread, so a thread slowed down by
  // another process is not waited for long.
  const std::size_t slots = std::max<std::size_t>(1, kernels::pieces_for(d.n));
  const std::size_t du_size = kXi * d.o * d.c;
  std::vector<std::vector<double>> du(gw ? slots : 0);
  std::vector<std::vector<T>> db(gb ? slots : 0);
  parallel_for(0, slots, [&](std::size_t slot) {
    if (gw) du[slot].assign(du_size, 0.0);
    if (gb) db[slot].assign(d.o, T(0));
    const std::size_t first = slot * d.n / slots, last = (slot + 1) * d.n / slots;
    if (gx) std::fill(gx + first * d.c * d.h * d.w, gx + last * d.c * d.h * d.w, T(0));
    for (std::size_t R = first * L.tiles_h; R < last * L.tiles_h; R += L.rows_per_chunk) {
      const Chunk ch{R, std::min(last * L.tiles_h, R + L.rows_per_chunk)};
      const int tiles = int(ch.tiles(L)), C = int(d.c), O = int(d.o);
      T* v = kernels::scratch<T, kTransformed>(kXi * d.c * tiles);
      T* dm = kernels::scratch<T, kProducts>(kXi * d.o * tiles);
      output_grad_to<W>(d, L, ch, gy, dm, gb ? db[slot].data() : nullptr);
      if (gw) {
        transform_input<W>(d, L, ch, x, v);
        T* vt = kernels::scratch<T, kTransposed>(d.c * tiles);
        T* part = kernels::scratch<T, kPart>(d.o * d.c);
        for (std::size_t xi = 0; xi < kXi; ++xi)
          weight_product_add(O, C, tiles, dm + xi * d.o * tiles, v + xi * d.c * tiles, vt, part,
                             du[slot].data() + xi * d.o * d.c);
      }
      if (gx) {
        for (std::size_t xi = 0; xi < kXi; ++xi)  // dV = U^T dM, into v
          small_gemm::multiply(C, tiles, O, u.data() + xi * d.o * d.c, 1, C,
                               dm + xi * d.o * tiles, tiles, v + xi * d.c * tiles, tiles, false);
        input_grad_from<W>(d, L, ch, v, gx);
      }
    }
  });
  if (gw) {
    std::vector<double> du_sum(du_size);
    kernels::sum_parts(du, du_sum.data());
    weight_grad_from<W>(d, du_sum.data(), gw);
  }
  if (gb) kernels::sum_parts(db, gb);
}

}  // namespace

bool applies(std::size_t c, std::size_t o, std::size_t kh, std::size_t kw, std::size_t stride,
             std::size_t pad_h, std::size_t pad_w) {
  return kh == 3 && kw == 3 && stride == 1 && pad_h == 1 && pad_w == 1 && c >= 16 && o >= 16;
}

std::size_t default_tile(const Dims& d) { return d.w >= 16 ? 4 : 2; }

template <class T>
void forward(const Dims& d, std::size_t tile, const T* x, const T* weight, const T* bias, T* y) {
  if (tile == 4)
    forward_with<Minimal<4>>(d, x, weight, bias, y);
  else
    forward_with<Minimal<2>>(d, x, weight, bias, y);
}

template <class T>
void backward(const Dims& d, std::size_t tile, const T* x, const T* weight, const T* gy, T* gx,
              T* gw, T* gb) {
  if (!gx && !gw && !gb) return;
  if (tile == 4)
    backward_with<Minimal<4>>(d, x, weight, gy, gx, gw, gb);
  else
    backward_with<Minimal<2>>(d, x, weight, gy, gx, gw, gb);
}

#define FLOWGRAD_WINOGRAD(T)                                                              \
  template void forward(const Dims&, std::size_t, const T*, const T*, const T*, T*);    \
  template void backward(const Dims&, std::size_t, const T*, const T*, const T*, T*, T*, T*);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_WINOGRAD)

}  // namespace flowgrad::winograd
