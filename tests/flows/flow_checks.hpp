// Helpers for the flows tests: random arrays, parameter perturbation, and per-example
// Jacobians by reverse mode (one output row at a time), independent of any logdet code.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "autograd/autograd.hpp"
#include "flows/linalg.hpp"
#include "nn/module.hpp"

namespace flow_checks {

using namespace flowgrad;
using Arr = xt::xarray<double>;

inline Arr randn(const Shape& shape, unsigned seed, double scale = 1.0, double offset = 0.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n;
  Arr a = Arr::from_shape(shape);
  for (auto& v : a) v = offset + scale * n(rng);
  return a;
}

inline Arr rand_uniform(const Shape& shape, unsigned seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  Arr a = Arr::from_shape(shape);
  for (auto& v : a) v = u(rng);
  return a;
}

// Every parameter += scale * N(0, 1): zero-initialised layers become non-trivial.
template <class T>
void perturb(nn::Module<T>& m, double scale, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n;
  for (auto& [name, p] : m.named_parameters())
    for (auto& v : p.value()) v += T(scale * n(rng));
}

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  auto ib = b.begin();
  for (auto ia = a.begin(); ia != a.end(); ++ia, ++ib) {
    const double d = std::abs(double(*ia) - double(*ib));
    if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
  }
  return worst;
}

// J[b](i, j) = d f(x)[b, i] / d x[b, j] for a function acting on each example separately.
template <class F>
std::vector<Arr> jacobians(F&& f, const Arr& x0) {
  Tensor<double> x(x0, true);
  Tensor<double> y = f(x);
  const std::size_t batch = x0.shape()[0], din = x0.size() / batch, dout = y.size() / batch;
  std::vector<Arr> J(batch, Arr(xt::zeros<double>({dout, din})));
  for (std::size_t i = 0; i < dout; ++i) {
    Arr pick = xt::zeros<double>(y.shape());
    for (std::size_t b = 0; b < batch; ++b) pick.data()[b * dout + i] = 1.0;
    x.zero_grad();
    sum(mul(y, pick)).backward(true);
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t j = 0; j < din; ++j) J[b](i, j) = x.has_grad() ? x.grad().data()[b * din + j] : 0.0;
  }
  return J;
}

// Worst |log|det J_b| - logdet_b| over the batch.
template <class F>
double logdet_error(F&& f, const Arr& x, const Arr& logdet) {
  auto J = jacobians(f, x);
  double worst = 0;
  for (std::size_t b = 0; b < J.size(); ++b)
    worst = std::max(worst, std::abs(flows::slogdet(J[b]).logabs - logdet(b)));
  return worst;
}

}  // namespace flow_checks
