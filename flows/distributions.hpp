// Base distributions for the latents, separate from the flows.
//
//   log_prob(z)               per example: the sum over every axis but the batch, (B,)
//   sample(shape, T)          z = mean + T * sigma * eps (temperature T scales the spread)
#pragma once

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace flowgrad::flows {

template <class T = float>
class Distribution {
 public:
  virtual ~Distribution() = default;
  virtual Tensor<T> log_prob(const Tensor<T>& z) const = 0;
  virtual Tensor<T> sample(const Shape& shape, T temperature = 1) const = 0;
};

// N(0, I): log p(z) = sum -(z^2 + log 2pi) / 2.
template <class T = float>
class StandardGaussian : public Distribution<T> {
 public:
  Tensor<T> log_prob(const Tensor<T>& z) const override;
  Tensor<T> sample(const Shape& shape, T temperature = 1) const override;
};

// Standard logistic (NICE's prior): log p(z) = sum -(softplus(z) + softplus(-z)).
template <class T = float>
class StandardLogistic : public Distribution<T> {
 public:
  Tensor<T> log_prob(const Tensor<T>& z) const override;
  Tensor<T> sample(const Shape& shape, T temperature = 1) const override;
};

// N(mean, exp(log_scale)^2) with a diagonal covariance; mean and log_scale broadcast
// against z (e.g. (B,C,H,W) from a prior network, or (1,C,1,1) learned parameters).
// Gradients flow to both. Glow's split prior and learned top prior.
template <class T = float>
class DiagonalGaussian : public Distribution<T> {
 public:
  DiagonalGaussian(Tensor<T> mean, Tensor<T> log_scale);
  Tensor<T> log_prob(const Tensor<T>& z) const override;
  // `shape` must broadcast with the mean's shape (pass the mean's shape to draw one z each).
  Tensor<T> sample(const Shape& shape, T temperature = 1) const override;

  const Tensor<T>& mean() const { return mean_; }
  const Tensor<T>& log_scale() const { return log_scale_; }

 private:
  Tensor<T> mean_, log_scale_;
};

}  // namespace flowgrad::flows
