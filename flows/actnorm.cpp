#include "flows/actnorm.hpp"

#include <cmath>
#include <vector>

#include "autograd/instantiate.hpp"

namespace flowgrad::flows {

template <class T>
ActNorm<T>::ActNorm(std::size_t channels, std::size_t rank) : channels_(channels), rank_(rank) {
  if (rank < 2) throw std::invalid_argument("ActNorm: input rank must be at least 2 (B, C, ...)");
  Shape s(rank, 1);
  s[1] = channels;
  loc = this->register_parameter("loc", xt::zeros<T>(s));
  logs = this->register_parameter("logs", xt::zeros<T>(s));
  initialized_ = this->register_buffer("initialized", xt::zeros<T>({1}));
}

template <class T>
void ActNorm<T>::check(const char* op, const Shape& s) const {
  if (s.size() != rank_ || s[1] != channels_)
    throw ShapeError(std::string("ActNorm::") + op + ": expected " + std::to_string(rank_) +
                     "-d input with " + std::to_string(channels_) + " channels on axis 1, got " +
                     shape_str(s));
}

template <class T>
void ActNorm<T>::initialize_from(const Tensor<T>& x) {
  check("initialize", x.shape());
  const Shape s = x.shape();
  const std::size_t batch = s[0], c = channels_, inner = per_example_size(s) / c;
  const std::size_t n = batch * inner;
  if (n < 2)
    throw ShapeError("ActNorm: data-dependent init needs at least 2 values per channel, got input " +
                     shape_str(s));
  std::vector<double> sum(c, 0.0), sq(c, 0.0);
  const T* d = x.value().data();
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t ch = 0; ch < c; ++ch)
      for (std::size_t i = 0; i < inner; ++i) sum[ch] += d[(b * c + ch) * inner + i];
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t ch = 0; ch < c; ++ch) {
      const double m = sum[ch] / n;
      for (std::size_t i = 0; i < inner; ++i) {
        const double e = d[(b * c + ch) * inner + i] - m;
        sq[ch] += e * e;
      }
    }
  for (std::size_t ch = 0; ch < c; ++ch) {
    const double mean = sum[ch] / n, std = std::sqrt(sq[ch] / (n - 1));
    loc.value().data()[ch] = T(-mean);
    logs.value().data()[ch] = T(-std::log(std + 1e-6));
  }
  initialized_.value()(0) = T(1);
}

template <class T>
FlowResult<T> ActNorm<T>::forward(const Tensor<T>& x) {
  check("forward", x.shape());
  if (data_init_ && this->is_training() && !initialized()) initialize_from(x);
  const T hw = T(per_example_size(x.shape()) / channels_);
  return {(x + loc) * exp(logs), per_example(sum(logs) * hw, x.shape()[0])};
}

template <class T>
FlowResult<T> ActNorm<T>::inverse(const Tensor<T>& y) {
  check("inverse", y.shape());
  const T hw = T(per_example_size(y.shape()) / channels_);
  return {y * exp(-logs) - loc, per_example(sum(logs) * (-hw), y.shape()[0])};
}

#define FLOWGRAD_ACTNORM(T) template class ActNorm<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_ACTNORM)

}  // namespace flowgrad::flows
