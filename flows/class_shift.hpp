// A class-conditional prior's shift (openai/glow's ycond): a zero-initialised linear map
// from the one-hot class to a shift of a Gaussian prior's parameters, so a conditional
// model starts as the unconditional one. Per channel (ycond: 2C numbers per class) or per
// position (a class-specific mean and log-scale image: 2C x H x W numbers per class).
#pragma once

#include <memory>

#include "nn/linear.hpp"

namespace flowgrad::flows {

// The map for a prior with `channels` x height x width parameters (means and log-scales
// together): out = channels, or channels * height * width when per_position.
template <class T = float>
std::shared_ptr<nn::Linear<T>> make_class_map(std::size_t classes, std::size_t channels, std::size_t height,
                                              std::size_t width, bool per_position);

// map(context) shaped to add onto prior parameters of shape `like` (B, C, H, W):
// (B, C, 1, 1) from a per-channel map, (B, C, H, W) from a per-position one.
template <class T = float>
Tensor<T> class_shift(nn::Linear<T>& map, const Tensor<T>& context, const Shape& like);

}  // namespace flowgrad::flows
