#include "autograd/winograd.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>
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

// F(4x4, 3x3)'s tile transforms with their rows' common terms shared (the factored
// forms of Lavin & Gray): B^T d in 14 operations instead of 22, A^T m in 10 instead of 20.
// They are most of the tile transforms' arithmetic, which is most of their time.
template <bool Transposed, class T>
inline void input_rows_4(const T* in, T* out) {  // out = B^T in, or B in
  if (!Transposed) {
    const T sum12 = in[1] + in[2], dif12 = in[1] - in[2], sum34 = in[3] + in[4], dif43 = in[4] - in[3];
    const T dif42 = in[4] - in[2], dif31 = in[3] - in[1];
    out[0] = T(4) * in[0] - T(5) * in[2] + in[4];
    out[1] = sum34 - T(4) * sum12;
    out[2] = dif43 + T(4) * dif12;
    out[3] = dif42 + T(2) * dif31;
    out[4] = dif42 - T(2) * dif31;
    out[5] = T(4) * in[1] - T(5) * in[3] + in[5];
  } else {
    const T sum12 = in[1] + in[2], dif21 = in[2] - in[1], sum34 = in[3] + in[4], dif43 = in[4] - in[3];
    out[0] = T(4) * in[0];
    out[1] = T(4) * (dif21 + in[5]) + T(2) * dif43;
    out[2] = -(T(5) * in[0] + T(4) * sum12 + sum34);
    out[3] = -(dif21 + T(2) * dif43 + T(5) * in[5]);
    out[4] = in[0] + sum12 + sum34;
    out[5] = in[5];
  }
}
template <bool Transposed, class T>
inline void output_rows_4(const T* in, T* out) {  // out = A^T in (6 -> 4), or A in (4 -> 6)
  if (!Transposed) {
    const T sum12 = in[1] + in[2], dif12 = in[1] - in[2], sum34 = in[3] + in[4], dif34 = in[3] - in[4];
    out[0] = in[0] + sum12 + sum34;
    out[1] = dif12 + T(2) * dif34;
    out[2] = sum12 + T(4) * sum34;
    out[3] = dif12 + T(8) * dif34 + in[5];
  } else {
    const T even1 = in[0] + in[2], odd1 = in[1] + in[3];
    const T even2 = in[0] + T(4) * in[2], odd2 = T(2) * (in[1] + T(4) * in[3]);
    out[0] = in[0];
    out[1] = even1 + odd1;
    out[2] = even1 - odd1;
    out[3] = even2 + odd2;
    out[4] = even2 - odd2;
    out[5] = in[3];
  }
}

// out[i] = sum_k Mat[i][k] in[k] (or, transposed, sum_k Mat[k][i] in[k]) for a small
// constant matrix: unrolled, and a zero coefficient costs nothing (so B^T d is the
// handful of adds it is on paper, not a dense 6 x 6 product).
template <class A, class B>
constexpr bool same_object(const A& a, const B& b) {
  return static_cast<const void*>(&a) == static_cast<const void*>(&b);
}
template <bool Transposed, const auto& Mat, class T>
inline void apply(const T* in, T* out) {
  if constexpr (same_object(Mat, Minimal<4>::BT)) {
    input_rows_4<Transposed>(in, out);
  } else if constexpr (same_object(Mat, Minimal<4>::AT)) {
    output_rows_4<Transposed>(in, out);
  } else {
    constexpr int Rows = std::extent_v<std::remove_reference_t<decltype(Mat)>, 0>;
    constexpr int Cols = std::extent_v<std::remove_reference_t<decltype(Mat)>, 1>;
    constexpr int n_out = Transposed ? Cols : Rows, n_in = Transposed ? Rows : Cols;
#pragma GCC unroll 64
    for (int i = 0; i < n_out; ++i) {
      T acc = T(0);
#pragma GCC unroll 64
      for (int k = 0; k < n_in; ++k) {
        const double c = Transposed ? Mat[k][i] : Mat[i][k];
        if (c == 1) acc += in[k];
        else if (c == -1) acc -= in[k];
        else if (c != 0) acc += T(c) * in[k];
      }
      out[i] = acc;
    }
  }
}

// out = K in K^T with K = Mat, or Mat^T when Transposed: every transform of a tile (and
// of a filter) has this form. A column at a time, then a row at a time.
template <bool Transposed, const auto& Mat, class T, std::size_t N, std::size_t P>
inline void sandwich(const T (&in)[N][N], T (&out)[P][P]) {
  T left[P][N], col[N], res[P];  // left = K in
#pragma GCC unroll 64
  for (std::size_t j = 0; j < N; ++j) {
#pragma GCC unroll 64
    for (std::size_t i = 0; i < N; ++i) col[i] = in[i][j];
    apply<Transposed, Mat>(col, res);
#pragma GCC unroll 64
    for (std::size_t a = 0; a < P; ++a) left[a][j] = res[a];
  }
#pragma GCC unroll 64
  for (std::size_t a = 0; a < P; ++a) apply<Transposed, Mat>(left[a], out[a]);
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

// A row and its M phases: phase q holds row[M k + q]. Strided loads and stores one
// float at a time were half of the input transform's time; these move 32 row elements
// at a time, as two vectors and M shuffles (GCC's generic vectors: one AVX-512 register
// each in the avx512f clone, two AVX2 ones in the avx2 clone).
constexpr int kRowBlock = 32;
template <class T, int N>
struct VectorOf {
  typedef T type __attribute__((vector_size(N * sizeof(T))));
};
template <class T, int N>
using Vector = typename VectorOf<T, N>::type;

template <int M, int Q, class T, int... I>
inline void take_phase(const Vector<T, kRowBlock / 2>& lo, const Vector<T, kRowBlock / 2>& hi,
                       T* to, std::integer_sequence<int, I...>) {
  const auto phase = __builtin_shufflevector(lo, hi, (Q + M * I)...);
  std::memcpy(to, &phase, sizeof phase);
}
template <int M, class T, int... Q>
inline void split_block(const T* row, T* const* phases, std::size_t k, std::integer_sequence<int, Q...>) {
  Vector<T, kRowBlock / 2> lo, hi;
  std::memcpy(&lo, row, sizeof lo);
  std::memcpy(&hi, row + kRowBlock / 2, sizeof hi);
  (take_phase<M, Q>(lo, hi, phases[Q] + k, std::make_integer_sequence<int, kRowBlock / M>()), ...);
}
template <class V, class W, int... I>
inline void concatenate(const V& a, const V& b, W& ab, std::integer_sequence<int, I...>) {
  ab = __builtin_shufflevector(a, b, I...);
}
template <int M, class T, int... J>
inline void merge_block(const T* const* phases, std::size_t k, T* row, std::integer_sequence<int, J...>) {
  constexpr int P = kRowBlock / M;
  Vector<T, P> in[M];
  for (int q = 0; q < M; ++q) std::memcpy(&in[q], phases[q] + k, sizeof in[q]);
  Vector<T, kRowBlock> out;
  if constexpr (M == 2) {
    out = __builtin_shufflevector(in[0], in[1], ((J % M) * P + J / M)...);
  } else {  // M == 4: phases 0, 1 and 2, 3 side by side first
    static_assert(M == 4);
    Vector<T, 2 * P> in01, in23;
    concatenate(in[0], in[1], in01, std::make_integer_sequence<int, 2 * P>());
    concatenate(in[2], in[3], in23, std::make_integer_sequence<int, 2 * P>());
    out = __builtin_shufflevector(in01, in23, ((J % M) * P + J / M)...);
  }
  std::memcpy(row, &out, sizeof out);
}

// to[0, n) = from[0, n), in whole vectors, the last one overlapping the one before: for
// rows of 14-32 floats a call to memmove cost more than the row's shuffles.
template <int N = kRowBlock / 2, class T>
inline void copy_row(const T* from, std::size_t n, T* to) {
  if constexpr (N > 1)
    if (n < N) return copy_row<N / 2>(from, n, to);
  if (n == 0) return;
  Vector<T, N> v;
  for (std::size_t i = 0; i + N < n; i += N) {
    std::memcpy(&v, from + i, sizeof v);
    std::memcpy(to + i, &v, sizeof v);
  }
  std::memcpy(&v, from + n - N, sizeof v);
  std::memcpy(to + n - N, &v, sizeof v);
}

// Elements past the end that split_row and merge_row read or write: rows and phases
// get this much slack.
constexpr std::size_t kRowSlack = kRowBlock;

// phases[q][k] = row[M k + q] for k < n (and a few k past n: see kRowSlack).
template <int M, class T>
inline void split_row(const T* row, std::size_t n, T* const* phases) {
  for (std::size_t k = 0; k < n; k += kRowBlock / M)
    split_block<M>(row + M * k, phases, k, std::make_integer_sequence<int, M>());
}
// row[M k + q] = phases[q][k] for k < n (and a few k past n).
template <int M, class T>
inline void merge_row(const T* const* phases, std::size_t n, T* row) {
  for (std::size_t k = 0; k < n; k += kRowBlock / M)
    merge_block<M>(phases, k, row + M * k, std::make_integer_sequence<int, kRowBlock>());
}

struct Layout {
  std::size_t m;                 // output tile size
  std::size_t tiles_h, tiles_w;  // per image
  std::size_t half;              // tiles per row, with the extra one: tiles_w + 1
  std::size_t rows_per_chunk;    // tile rows
  Layout(const Dims& d, std::size_t tile, std::size_t tile_bytes)
      : m(tile), tiles_h((d.h + tile - 1) / tile), tiles_w((d.w + tile - 1) / tile),
        half(tiles_w + 1), rows_per_chunk(std::max<std::size_t>(1, kChunkBytes / tile_bytes / half)) {}
  // Elements of one phase of a chunk's input: its rows plus one, one zero that the
  // last (extra) tile reads past the end, and what split_row writes past it.
  std::size_t phase_size() const { return (rows_per_chunk + 1) * half + 1 + kRowSlack; }
  // Of one phase of a chunk's output (no extra row).
  std::size_t output_phase_size() const { return rows_per_chunk * half + kRowSlack; }
  // A row with its zero padding: column -1, the image, zeros to where split_row reads;
  // and room for a chunk's rows of them. A chunk's rows are all copied before any is
  // split (or all merged before any is copied out): read right after they are written,
  // the vector loads would wait for the stores they straddle (a quarter of the input
  // transform's time, when done a row at a time).
  std::size_t padded_row() const { return m * half + kRowSlack; }
  std::size_t padded_size() const { return (rows_per_chunk + 1) * m * padded_row(); }
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
enum ScratchRole { kPhases, kRow, kContributions, kTransformed, kProducts, kTransposed, kPart };

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
        sandwich<false, W::G>(g, out[b]);
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
        sandwich<true, W::G>(in[b], g);
        for (int i = 0; i < 9; ++i) grad[9 * (k0 + b) + i] = T(g[i / 3][i % 3]);
      }
    }
  }, kFiltersPerPiece);
}

// V[xi][c][t] = (B^T d B)[xi] for the patch d of every tile t of the chunk.
template <class W, class T>
FLOWGRAD_SIMD_CLONES void transform_input(const Dims& d, const Layout& L, Chunk ch, const T* x,
                                          T* v) {
  constexpr int M = W::m, A = W::alpha;
  const std::size_t T_ = ch.tiles(L), half = L.half, stride = L.phase_size();
  T* phases = kernels::scratch<T, kPhases>(M * M * stride);
  const std::size_t PR = L.padded_row();
  T* padded = kernels::scratch<T, kRow>(L.padded_size());
  std::fill(padded, padded + L.padded_size(), T(0));  // only columns [1, w + 1) are written below
  for (std::size_t c = 0; c < d.c; ++c) {
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      const T* plane = x + (s.image * d.c + c) * d.h * d.w;
      std::size_t lo, hi;
      patch_rows(L, s, d.h, lo, hi);
      if (c + 1 < d.c) prefetch(plane + d.h * d.w + lo * d.w, (hi - lo) * d.w);
      const std::size_t rows = s.rows + 1;
      for (std::size_t p = 0; p < M * M; ++p) phases[p * stride + rows * half] = T(0);
      for (std::size_t i = 0; i < rows * M; ++i) {  // row i of the patches: image row m ty0 + i - 1
        const long ih = long(M * s.ty0 + i) - 1;
        T* to = padded + i * PR + 1;
        if (ih >= 0 && ih < long(d.h)) copy_row(plane + ih * d.w, d.w, to);
        else std::fill(to, to + d.w, T(0));
      }
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t p = 0; p < M; ++p) {
          T* out[M];
          for (int q = 0; q < M; ++q) out[q] = phases + (p * M + q) * stride + r * half;
          split_row<M>(padded + (r * M + p) * PR, half, out);
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
        sandwich<false, W::BT>(patch, vt);  // B^T d B
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
  const std::size_t PR = L.padded_row();
  T* padded = kernels::scratch<T, kRow>(L.padded_size());
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
        sandwich<true, W::BT>(dvt, ddt);  // B dV B^T
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
          const T* in_phases[M];
          for (int q = 0; q < M; ++q) in_phases[q] = phases + (p * M + q) * stride + r * half;
          merge_row<M>(in_phases, half, padded + (r * M + p) * PR);
        }
      for (std::size_t i = 0; i < rows * M; ++i) {  // image row m ty0 + i - 1; column -1 dropped
        const long ih = long(M * s.ty0 + i) - 1;
        if (ih < 0 || ih >= long(d.h)) continue;
        T* row = plane + ih * d.w;
        const T* from = padded + i * PR + 1;
        FLOWGRAD_IVDEP
        for (std::size_t j = 0; j < d.w; ++j) row[j] += from[j];
      }
    }
}

// y = A^T M A (+ bias) for every tile, cropped to the image.
template <class W, class T>
FLOWGRAD_SIMD_CLONES void transform_output(const Dims& d, const Layout& L, Chunk ch, const T* mm,
                                           const T* bias, T* y) {
  constexpr int M = W::m, A = W::alpha;
  const std::size_t T_ = ch.tiles(L), half = L.half, stride = L.output_phase_size();
  T* phases = kernels::scratch<T, kPhases>(M * M * stride);  // output phase (r, s): rows m ty + r, columns m tx + s
  const std::size_t PR = L.padded_row();
  T* merged = kernels::scratch<T, kRow>(L.padded_size());
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
        sandwich<false, W::AT>(mt, yt);  // A^T M A
#pragma GCC unroll 64
        for (int k = 0; k < M * M; ++k) phases[k * stride + t] = yt[k / M][k % M] + b;
      }
      T* plane = y + (s.image * d.o + o) * d.h * d.w;
      const std::size_t out_rows = std::min(d.h - M * s.ty0, M * s.rows);
      for (std::size_t i = 0; i < out_rows; ++i) {  // image row m ty0 + i
        const T* in[M];
        for (int q = 0; q < M; ++q) in[q] = phases + ((i % M) * M + q) * stride + (i / M) * half;
        merge_row<M>(in, L.tiles_w, merged + i * PR);
      }
      for (std::size_t i = 0; i < out_rows; ++i)
        copy_row(merged + i * PR, d.w, plane + (M * s.ty0 + i) * d.w);
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
  const std::size_t T_ = ch.tiles(L), half = L.half, stride = L.output_phase_size();
  T* phases = kernels::scratch<T, kPhases>(M * M * stride);
  const std::size_t PR = L.padded_row();
  T* padded = kernels::scratch<T, kRow>(L.padded_size());
  std::fill(padded, padded + L.padded_size(), T(0));  // only columns [0, w) are written below
  for (std::size_t o = 0; o < d.o; ++o) {
    FLOWGRAD_FOR_EACH_SEGMENT(s, L, ch) {
      const std::size_t n = s.rows * half;
      const std::size_t row_lo = M * s.ty0, row_hi = std::min(d.h, M * (s.ty0 + s.rows));
      const T* plane = gy + (s.image * d.o + o) * d.h * d.w;
      if (o + 1 < d.o) prefetch(plane + (d.h + row_lo) * d.w, (row_hi - row_lo) * d.w);
      for (std::size_t i = 0; i < M * s.rows; ++i) {  // image row m ty0 + i
        const std::size_t oh = M * s.ty0 + i;
        if (oh < d.h) copy_row(plane + oh * d.w, d.w, padded + i * PR);
        else std::fill(padded + i * PR, padded + i * PR + d.w, T(0));
      }
      for (std::size_t i = 0; i < M * s.rows; ++i) {
        T* out[M];
        for (int q = 0; q < M; ++q) out[q] = phases + ((i % M) * M + q) * stride + (i / M) * half;
        split_row<M>(padded + i * PR, half, out);
      }
      if (bias_grad) bias_grad[o] += kernels::sum_of(plane + row_lo * d.w, (row_hi - row_lo) * d.w);
      T* out[A * A];
      position_rows(dm, d.o, o, T_, s.offset, out);
      FLOWGRAD_IVDEP
      for (std::size_t t = 0; t < n; ++t) {
        T g[M][M], dmt[A][A];
#pragma GCC unroll 64
        for (int k = 0; k < M * M; ++k) g[k / M][k % M] = phases[k * stride + t];
        sandwich<true, W::AT>(g, dmt);  // A dY A^T
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
