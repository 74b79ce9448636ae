// BatchNorm2d as PyTorch's: in training, normalise with the batch's statistics (biased
// variance) and update the running ones (momentum 0.1, unbiased variance); in eval, use
// the running ones. Affine weight (ones) and bias (zeros); buffers running_mean,
// running_var, num_batches_tracked. Built from recorded ops, so its backward is theirs.
#pragma once

#include <cmath>
#include <string>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>

#include "autograd/elementwise.hpp"
#include "autograd/reduce.hpp"
#include "autograd/shape.hpp"
#include "nn/module.hpp"

namespace flowgrad::nn {

template <class T = float>
class BatchNorm2d : public Layer<T> {
 public:
  explicit BatchNorm2d(std::size_t channels, T eps = T(1e-5), T momentum = T(0.1))
      : channels(channels), eps(eps), momentum(momentum) {
    weight = this->register_parameter("weight", xt::ones<T>({channels}));
    bias = this->register_parameter("bias", xt::zeros<T>({channels}));
    running_mean = this->register_buffer("running_mean", xt::zeros<T>({channels}));
    running_var = this->register_buffer("running_var", xt::ones<T>({channels}));
    // A 0-d int64 count in PyTorch; kept in T here like every other tensor.
    num_batches_tracked = this->register_buffer("num_batches_tracked", xt::xarray<T>(T(0)));
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    const Shape s = x.shape();
    if (s.size() != 4 || s[1] != channels)
      throw ShapeError("BatchNorm2d: input " + shape_str(s) + ", want (N, " +
                       std::to_string(channels) + ", H, W)");
    const Shape per_channel{1, channels, 1, 1};
    const Tensor<T> w = reshape(weight, per_channel), b = reshape(bias, per_channel);
    auto as_per_channel = [&](xt::xarray<T> a) {
      a.reshape(per_channel);
      return a;
    };
    if (!this->is_training()) {
      const xt::xarray<T> inv_std = as_per_channel(T(1) / xt::sqrt(running_var.value() + eps));
      const Tensor<T> centred = x - Tensor<T>(as_per_channel(running_mean.value()));
      return mul(centred, inv_std) * w + b;
    }
    const std::size_t count = s[0] * s[2] * s[3];
    if (count < 2)
      throw ShapeError("BatchNorm2d: training needs more than one value per channel, input " +
                       shape_str(s));
    const Tensor<T> mu = mean(x, {0, 2, 3}, true);
    const Tensor<T> centred = x - mu;
    const Tensor<T> var = mean(centred * centred, {0, 2, 3}, true);  // biased, to normalise
    const Tensor<T> y = centred * pow(var + eps, T(-0.5)) * w + b;

    xt::xarray<T> batch_mean = mu.value(), batch_var = var.value();
    batch_mean.reshape({channels});
    batch_var.reshape({channels});
    const T unbiased = T(count) / T(count - 1);
    running_mean.value() = (T(1) - momentum) * running_mean.value() + momentum * batch_mean;
    running_var.value() = (T(1) - momentum) * running_var.value() + momentum * unbiased * batch_var;
    num_batches_tracked.value() += T(1);
    return y;
  }

  std::size_t channels;
  T eps, momentum;
  Tensor<T> weight, bias, running_mean, running_var, num_batches_tracked;
};

}  // namespace flowgrad::nn
