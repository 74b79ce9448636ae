// Bits per dimension of 8-bit data modelled as x in [0,1)^D (x = (pixel + u) / 256):
//   bpd = (-log p(x) + D ln 256) / (D ln 2)
// log p(x) is the density of x in [0,1)^D, including a Logit layer's logdet when the
// model has one; the 1/256 bin width enters here once, through D ln 256.
#pragma once

#include <cmath>
#include <cstddef>

#include "autograd/elementwise.hpp"

namespace flowgrad::flows {

inline double bits_per_dim(double log_px, std::size_t dims) {
  const double d = double(dims);
  return (-log_px + d * std::log(256.0)) / (d * std::log(2.0));
}

// Per example: log_px (B,) -> (B,), on the tape (so it can be the loss).
template <class T>
Tensor<T> bits_per_dim(const Tensor<T>& log_px, std::size_t dims) {
  const double d = double(dims);
  return (log_px * T(-1) + T(d * std::log(256.0))) * T(1 / (d * std::log(2.0)));
}

}  // namespace flowgrad::flows
