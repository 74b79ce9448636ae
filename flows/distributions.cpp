#include "flows/distributions.hpp"

#include <cmath>
#include <random>

#include "autograd/elementwise.hpp"
#include "autograd/instantiate.hpp"
#include "flows/flow.hpp"

namespace flowgrad::flows {

namespace {
const double kLog2Pi = std::log(2 * M_PI);

void check_batched(const char* who, const Shape& s) {
  if (s.empty()) throw ShapeError(std::string(who) + ": needs a batch axis, got a scalar");
}
}  // namespace

template <class T>
Tensor<T> StandardGaussian<T>::log_prob(const Tensor<T>& z) const {
  check_batched("StandardGaussian::log_prob", z.shape());
  return sum_per_example((z * z + T(kLog2Pi)) * T(-0.5));
}

template <class T>
Tensor<T> StandardGaussian<T>::sample(const Shape& shape, T temperature) const {
  xt::xarray<T> z = normal<T>(shape, T(0), T(1));
  return Tensor<T>(z * temperature);
}

template <class T>
Tensor<T> StandardLogistic<T>::log_prob(const Tensor<T>& z) const {
  check_batched("StandardLogistic::log_prob", z.shape());
  return -sum_per_example(softplus(z) + softplus(-z));
}

template <class T>
Tensor<T> StandardLogistic<T>::sample(const Shape& shape, T temperature) const {
  // Inverse CDF: z = log u - log(1 - u), with u drawn away from 0 and 1.
  std::uniform_real_distribution<double> d(0.0, 1.0);
  xt::xarray<T> z = xt::xarray<T>::from_shape(shape);
  for (auto& v : z) {
    double u;
    do u = d(default_generator());
    while (u <= 0.0 || u >= 1.0);
    v = T(temperature * (std::log(u) - std::log1p(-u)));
  }
  return Tensor<T>(std::move(z));
}

template <class T>
DiagonalGaussian<T>::DiagonalGaussian(Tensor<T> mean, Tensor<T> log_scale)
    : mean_(std::move(mean)), log_scale_(std::move(log_scale)) {
  if (!mean_.defined() || !log_scale_.defined())
    throw std::invalid_argument("DiagonalGaussian: mean and log_scale must be defined");
}

template <class T>
Tensor<T> DiagonalGaussian<T>::log_prob(const Tensor<T>& z) const {
  check_batched("DiagonalGaussian::log_prob", z.shape());
  // The reference's formula, term for term: -(log 2pi + 2 logs + (z - mean)^2 e^{-2 logs}) / 2.
  auto d = z - mean_;
  auto terms = (T(kLog2Pi) + T(2) * log_scale_) + d * d * exp(T(-2) * log_scale_);
  if (terms.shape() != z.shape())
    throw ShapeError("DiagonalGaussian::log_prob: z " + shape_str(z.shape()) + " with mean " +
                     shape_str(mean_.shape()) + " and log_scale " + shape_str(log_scale_.shape()) +
                     " gives " + shape_str(terms.shape()) + ", not z's shape");
  return sum_per_example(terms * T(-0.5));
}

template <class T>
Tensor<T> DiagonalGaussian<T>::sample(const Shape& shape, T temperature) const {
  Tensor<T> eps(normal<T>(shape, T(0), T(1)));
  auto z = mean_ + exp(log_scale_) * eps * temperature;
  if (z.shape() != shape)
    throw ShapeError("DiagonalGaussian::sample: shape " + shape_str(shape) + " does not hold mean " +
                     shape_str(mean_.shape()) + " and log_scale " + shape_str(log_scale_.shape()));
  return z;
}

#define FLOWGRAD_DISTRIBUTIONS(T)          \
  template class StandardGaussian<T>;      \
  template class StandardLogistic<T>;      \
  template class DiagonalGaussian<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_DISTRIBUTIONS)

}  // namespace flowgrad::flows
