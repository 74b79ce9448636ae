// Plain loops over contiguous row-major arrays, for the ops' hot paths. xtensor's lazy
// expressions walk broadcasts and views with steppers and allocate temporaries; these
// loops read and write memory once, vectorise, and spread big arrays over the threads
// of parallel_for. Every xt::xarray is contiguous and row-major, which they rely on.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/parallel.hpp"
#include "autograd/tensor.hpp"

namespace flowgrad::kernels {

// Below this many elements per thread a loop stays on the calling thread: waking the
// pool costs about as much as streaming this much memory.
constexpr std::size_t kGrain = std::size_t(1) << 15;

// The grain of loops that call libm per element (exp, log1p, tanh, pow): at 5-10 ns an
// element against ~0.1 ns for a multiply, 2,048 elements already outweigh waking the pool.
constexpr std::size_t kGrainLibm = kGrain / 16;

// Pieces per thread: parallel_for hands pieces out one at a time, so a thread that the
// OS runs late (a busy machine) leaves its share to the others instead of stalling them.
constexpr std::size_t kPiecesPerThread = 4;

// How many pieces to cut `units` independent units of work into: kPiecesPerThread per
// thread, one on one thread, never more than there are units.
inline std::size_t pieces_for(std::size_t units) {
  const std::size_t threads = std::size_t(num_threads());
  return std::min(units, threads < 2 ? std::size_t(1) : threads * kPiecesPerThread);
}

// fn(lo, hi) over [0, n), in pieces of at least `grain` spread over the threads.
template <class F>
void for_range(std::size_t n, F&& fn, std::size_t grain = kGrain) {
  const std::size_t pieces = pieces_for(n / std::max<std::size_t>(grain, 1));
  if (pieces <= 1 || in_parallel_region()) {
    if (n) fn(std::size_t(0), n);
    return;
  }
  parallel_for(0, pieces, [&](std::size_t p) { fn(p * n / pieces, (p + 1) * n / pieces); });
}

// out = the sum of parts (the pieces of a sum computed in parallel), added in order; the
// elements are spread over the threads (each is summed in the same order whatever they are).
template <class T>
void sum_parts(const std::vector<std::vector<T>>& parts, T* out) {
  for_range(parts[0].size(), [&](std::size_t lo, std::size_t hi) {
    std::copy(parts[0].begin() + lo, parts[0].begin() + hi, out + lo);
    for (std::size_t p = 1; p < parts.size(); ++p)
      for (std::size_t i = lo; i < hi; ++i) out[i] += parts[p][i];
  });
}

// A per-thread buffer of at least `size` elements that only grows, one per Role: hot
// loops (conv columns, Winograd tiles) reuse it across calls instead of allocating.
template <class T, int Role = 0>
T* scratch(std::size_t size) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

// y[i] = f(x[i]).
template <class T, class F>
xt::xarray<T> map(const xt::xarray<T>& x, F f, std::size_t grain = kGrain) {
  xt::xarray<T> y = xt::xarray<T>::from_shape(x.shape());
  const T* px = x.data();
  T* py = y.data();
  for_range(x.size(), [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) py[i] = f(px[i]);
  }, grain);
  return y;
}

// y[i] = f(a[i], b[i]) for arrays of the same size (the result has a's shape).
template <class T, class F>
xt::xarray<T> zip(const xt::xarray<T>& a, const xt::xarray<T>& b, F f) {
  xt::xarray<T> y = xt::xarray<T>::from_shape(a.shape());
  const T* pa = a.data();
  const T* pb = b.data();
  T* py = y.data();
  for_range(a.size(), [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) py[i] = f(pa[i], pb[i]);
  });
  return y;
}

// y[i] = f(y[i], x[i]) in place, same sizes.
template <class T, class F>
void update(xt::xarray<T>& y, const xt::xarray<T>& x, F f, std::size_t grain = kGrain) {
  const T* px = x.data();
  T* py = y.data();
  for_range(y.size(), [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) py[i] = f(py[i], px[i]);
  }, grain);
}

// Sum of n values with eight running sums: the adds pipeline and vectorise without
// -ffast-math, and the rounding error grows more slowly than with one.
template <class T>
T sum_of(const T* v, std::size_t n) {
  T acc[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += v[i + k];
  for (; i < n; ++i) acc[0] += v[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// How operands of (possibly) smaller shapes are read while walking an output shape in
// row-major order: axes of size 1 dropped, neighbouring axes merged wherever every
// operand is contiguous across them. The last axis is the "row" the inner loops run along;
// after merging, each operand's stride along it is 1 or 0 (broadcast).
struct Walk {
  std::vector<std::size_t> dims;                   // merged output axes
  std::vector<std::vector<std::ptrdiff_t>> strides;  // per operand, per merged axis; 0 = broadcast
  std::size_t inner() const { return dims.empty() ? 1 : dims.back(); }
  std::size_t rows() const {
    std::size_t r = 1;
    for (std::size_t i = 0; i + 1 < dims.size(); ++i) r *= dims[i];
    return r;
  }
  // Offsets of every operand at the start of row r.
  void offsets(std::size_t r, std::vector<std::ptrdiff_t>& off) const {
    std::fill(off.begin(), off.end(), 0);
    if (dims.size() < 2) return;
    for (std::size_t i = dims.size() - 1; i-- > 0;) {
      const std::size_t idx = r % dims[i];
      r /= dims[i];
      for (std::size_t k = 0; k < off.size(); ++k) off[k] += std::ptrdiff_t(idx) * strides[k][i];
    }
  }
};

// `operands` must each broadcast to `out` (numpy's rule; checked by the caller).
Walk plan_walk(const Shape& out, const std::vector<Shape>& operands);

// fn(row offsets, first row, end row) over the rows of a walk, split over threads by rows
// when there are enough of them (each call gets the offsets of its first row).
template <class F>
void for_rows(const Walk& w, std::size_t operands, F&& fn) {
  const std::size_t rows = w.rows(), inner = w.inner();
  for_range(rows, [&](std::size_t r0, std::size_t r1) {
    std::vector<std::ptrdiff_t> off(operands);
    std::vector<std::size_t> idx(w.dims.size() > 1 ? w.dims.size() - 1 : 0);
    w.offsets(r0, off);
    // Multi-index of r0, so the following rows advance like an odometer.
    for (std::size_t i = idx.size(), r = r0; i-- > 0;) {
      idx[i] = r % w.dims[i];
      r /= w.dims[i];
    }
    for (std::size_t r = r0; r < r1; ++r) {
      fn(off, r);
      for (std::size_t i = idx.size(); i-- > 0;) {
        for (std::size_t k = 0; k < operands; ++k) off[k] += w.strides[k][i];
        if (++idx[i] < w.dims[i]) break;
        for (std::size_t k = 0; k < operands; ++k) off[k] -= std::ptrdiff_t(w.dims[i]) * w.strides[k][i];
        idx[i] = 0;
      }
    }
  }, std::max<std::size_t>(1, kGrain / std::max<std::size_t>(inner, 1)));
}

// y = f(a, b) with numpy broadcasting to the shape `out`.
template <class T, class F>
xt::xarray<T> broadcast_zip(const xt::xarray<T>& a, const xt::xarray<T>& b, const Shape& out, F f) {
  const Shape as = to_shape(a.shape()), bs = to_shape(b.shape());
  if (as == out && bs == out) return zip(a, b, f);
  xt::xarray<T> y = xt::xarray<T>::from_shape(out);
  const Walk w = plan_walk(out, {as, bs});
  const std::size_t n = w.inner();
  const bool a_row = w.strides[0].empty() || w.strides[0].back() != 0;
  const bool b_row = w.strides[1].empty() || w.strides[1].back() != 0;
  const T* pa = a.data();
  const T* pb = b.data();
  T* py = y.data();
  for_rows(w, 2, [&](const std::vector<std::ptrdiff_t>& off, std::size_t r) {
    const T* ra = pa + off[0];
    const T* rb = pb + off[1];
    T* ry = py + r * n;
    if (a_row && b_row)
      for (std::size_t j = 0; j < n; ++j) ry[j] = f(ra[j], rb[j]);
    else if (a_row)
      for (std::size_t j = 0; j < n; ++j) ry[j] = f(ra[j], *rb);
    else if (b_row)
      for (std::size_t j = 0; j < n; ++j) ry[j] = f(*ra, rb[j]);
    else
      std::fill(ry, ry + n, f(*ra, *rb));
  });
  return y;
}

// x broadcast to `out` (a copy).
template <class T>
xt::xarray<T> broadcast_to(const xt::xarray<T>& x, const Shape& out) {
  return broadcast_zip(x, x, out, [](T a, T) { return a; });
}

// out = sum over the axes of g that broadcasting from `shape` added or stretched, of
// f(g[i], x[i]) (x has g's shape; pass g twice and ignore it for a plain sum).
// The result has `shape`. Threads each sum a share of the rows into their own partial
// result when the result is small next to g.
template <class T, class F>
xt::xarray<T> reduce_to(const xt::xarray<T>& g, const xt::xarray<T>& x, const Shape& shape, F f) {
  const Shape gs = to_shape(g.shape());
  xt::xarray<T> out = xt::zeros<T>(shape);
  if (g.size() == 0) return out;
  const Walk w = plan_walk(gs, {shape});
  const std::size_t n = w.inner(), rows = w.rows();
  const bool keep_row = !w.strides[0].empty() && w.strides[0].back() != 0;
  const T* pg = g.data();
  const T* px = x.data();
  auto run = [&](T* o, std::size_t r0, std::size_t r1) {
    std::vector<std::ptrdiff_t> off(1);
    for (std::size_t r = r0; r < r1; ++r) {
      w.offsets(r, off);
      const T* rg = pg + r * n;
      const T* rx = px + r * n;
      T* ro = o + off[0];
      if (keep_row) {
        for (std::size_t j = 0; j < n; ++j) ro[j] += f(rg[j], rx[j]);
      } else {
        T acc[8] = {};
        std::size_t j = 0;
        for (; j + 8 <= n; j += 8)
          for (int k = 0; k < 8; ++k) acc[k] += f(rg[j + k], rx[j + k]);
        for (; j < n; ++j) acc[0] += f(rg[j], rx[j]);
        *ro += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      }
    }
  };
  const std::size_t threads = std::size_t(num_threads());
  const std::size_t pieces = threads < 2 ? 1 : std::min(threads * kPiecesPerThread, g.size() / kGrain);
  if (pieces <= 1 || rows < pieces || out.size() * 8 > g.size() || in_parallel_region()) {
    run(out.data(), 0, rows);
    return out;
  }
  std::vector<std::vector<T>> partial(pieces, std::vector<T>(out.size(), T(0)));
  parallel_for(0, pieces, [&](std::size_t p) { run(partial[p].data(), p * rows / pieces, (p + 1) * rows / pieces); });
  T* po = out.data();
  for (const auto& part : partial)
    for (std::size_t i = 0; i < out.size(); ++i) po[i] += part[i];
  return out;
}

// Sum g down to `shape` (the reverse of broadcasting `shape` up to g's shape).
template <class T>
xt::xarray<T> sum_to(const xt::xarray<T>& g, const Shape& shape) {
  return reduce_to(g, g, shape, [](T a, T) { return a; });
}

}  // namespace flowgrad::kernels
