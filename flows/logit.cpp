#include "flows/logit.hpp"

#include <cmath>
#include <string>

#include "autograd/instantiate.hpp"

namespace flowgrad::flows {

template <class T>
Logit<T>::Logit(double alpha) : alpha_(alpha) {
  if (!(alpha >= 0 && alpha < 0.5))
    throw std::invalid_argument("Logit: alpha must be in [0, 0.5), got " + std::to_string(alpha));
}

template <class T>
FlowResult<T> Logit<T>::forward(const Tensor<T>& x) {
  if (x.dim() < 1) throw ShapeError("Logit: needs a batch axis, got a scalar");
  const T a = T(alpha_), span = T(1 - 2 * alpha_);
  auto p = x * span + a;
  auto log_p = log(p), log_q = log(T(1) - p);
  auto logdet = sum_per_example(T(std::log(1 - 2 * alpha_)) - log_p - log_q);
  return {log_p - log_q, logdet};
}

template <class T>
FlowResult<T> Logit<T>::inverse(const Tensor<T>& y) {
  if (y.dim() < 1) throw ShapeError("Logit: needs a batch axis, got a scalar");
  const T a = T(alpha_), span = T(1 - 2 * alpha_);
  // dp/dy = p (1 - p); log p + log(1 - p) = log_sigmoid(y) + log_sigmoid(-y), stable.
  auto logdet = sum_per_example(log_sigmoid(y) + log_sigmoid(-y) - T(std::log(1 - 2 * alpha_)));
  return {(sigmoid(y) - a) / span, logdet};
}

#define FLOWGRAD_LOGIT(T) template class Logit<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_LOGIT)

}  // namespace flowgrad::flows
