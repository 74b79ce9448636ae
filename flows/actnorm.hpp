// ActNorm (Glow): y = (x + loc) * exp(logs) per channel, loc and logs of shape (1, C, 1, 1).
// logdet = H*W * sum(logs), the same for every example.
//
// Data-dependent init: the first forward in training mode sets loc = -mean and
// logs = -log(std + 1e-6) per channel (std unbiased, as torch.std), so that batch comes out
// with mean 0 and std 1. The buffer `initialized` (saved with the model) records that it
// happened, so a loaded model is never re-initialised; set_data_init(false) switches it off.
#pragma once

#include "flows/flow.hpp"

namespace flowgrad::flows {

template <class T = float>
class ActNorm : public Flow<T> {
 public:
  // rank: of the input, (B, C, ...); 4 for images, 2 for flat vectors.
  explicit ActNorm(std::size_t channels, std::size_t rank = 4);
  FlowResult<T> forward(const Tensor<T>& x) override;
  FlowResult<T> inverse(const Tensor<T>& y) override;

  void set_data_init(bool on) { data_init_ = on; }
  bool initialized() const { return initialized_.value()(0) != T(0); }
  // Runs the data-dependent init on x now (also in eval mode), whatever the buffer says.
  void initialize_from(const Tensor<T>& x);

  Tensor<T> loc, logs;

 private:
  void check(const char* op, const Shape& s) const;
  std::size_t channels_, rank_;
  bool data_init_ = true;
  Tensor<T> initialized_;
};

// ActNorm as a plain layer, its logdet dropped: openai/glow normalises the hidden
// activations of its coupling nets this way (data-dependent init included).
template <class T = float>
class ActNormLayer : public nn::Layer<T> {
 public:
  explicit ActNormLayer(std::size_t channels)
      : norm(this->register_module("norm", std::make_shared<ActNorm<T>>(channels))) {}
  Tensor<T> forward(const Tensor<T>& x) override { return norm->forward(x).y; }

  std::shared_ptr<ActNorm<T>> norm;
};

}  // namespace flowgrad::flows
