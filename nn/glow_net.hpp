// Glow's coupling network, as the reference's GlowCoupling.net:
//   Sequential(conv3x3(c/2 -> hidden, pad 1), ReLU, conv1x1(hidden -> hidden), ReLU,
//              ZeroConv2d(hidden -> c))
// with names 0.*, 2.*, 4.logs, 4.conv.*. Input the first half of the channels; output
// c channels (shift and raw scale interleaved, split by the coupling).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "nn/activation.hpp"
#include "nn/conv2d.hpp"
#include "nn/sequential.hpp"
#include "nn/zero_conv.hpp"

namespace flowgrad::nn {

template <class T = float>
std::shared_ptr<Sequential<T>> glow_coupling_net(std::size_t channels, std::size_t hidden) {
  if (channels < 2 || channels % 2 != 0)
    throw std::invalid_argument("glow_coupling_net: channels must be even and >= 2, got " +
                                std::to_string(channels));
  return std::make_shared<Sequential<T>>(std::vector<std::shared_ptr<Layer<T>>>{
      std::make_shared<Conv2d<T>>(channels / 2, hidden, 3, 3, 1, 1), std::make_shared<ReLU<T>>(),
      std::make_shared<Conv2d<T>>(hidden, hidden, 1), std::make_shared<ReLU<T>>(),
      std::make_shared<ZeroConv2d<T>>(hidden, channels)});
}

}  // namespace flowgrad::nn
