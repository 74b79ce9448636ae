// Helpers for the flows tests: random arrays; the whole check
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

// The Jacobian-based logdet check and these helpers are the library's (flows/check.hpp).
using flows::logdet_error;
using flows::max_abs_diff;
using flows::perturb_parameters;

}  // namespace flow_checks
