// Helpers for the flows tests: random arrays and parameter perturbation; the whole check
// of one flow layer is the library's flows::check_flow (flows/check.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "autograd/autograd.hpp"
#include "flows/check.hpp"
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

// The Jacobian-based logdet check is the library's (flows/check.hpp).
using flows::logdet_error;

}  // namespace flow_checks
