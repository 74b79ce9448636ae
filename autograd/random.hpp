// The process-wide random generator: initialisers, dequantization noise and sampling
// all draw from it, so one seed makes a run reproducible.
#pragma once

#include <random>
#include <string>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.hpp"

namespace flowgrad {

using Generator = std::mt19937_64;

Generator& default_generator();
void manual_seed(std::uint64_t seed);
// The generator's full state as text, to put in a checkpoint, and back.
std::string generator_state();
void set_generator_state(const std::string& state);

template <class T>
xt::xarray<T> uniform(const Shape& shape, T lo, T hi, Generator& g = default_generator()) {
  std::uniform_real_distribution<double> d(lo, hi);
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  for (auto& v : a) v = T(d(g));
  return a;
}

template <class T>
xt::xarray<T> normal(const Shape& shape, T mean = 0, T stddev = 1, Generator& g = default_generator()) {
  std::normal_distribution<double> d(mean, stddev);
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  for (auto& v : a) v = T(d(g));
  return a;
}

}  // namespace flowgrad
