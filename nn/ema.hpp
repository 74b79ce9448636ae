// Polyak averaging: an exponential moving average of the parameters, updated after each
// optimizer step and used in their place for evaluation and samples (openai/glow's
// "polyak_epochs", TensorFlow's ExponentialMovingAverage).
//
//   average = d * average + (1 - d) * parameter,  d = min(decay, (1 + n) / (10 + n))
//
// where n counts the updates so far: the warm-up of d keeps the first averages from
// being dominated by the initial weights. The first update copies the parameters (after
// ActNorm's data-dependent init, which runs in the first forward pass).
//
// Its state is named "ema.<parameter name>" plus "ema.updates", so a checkpoint stores it
// in the same safetensors file as the model and the optimizer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "nn/safetensors.hpp"

namespace flowgrad::nn {

template <class T = float>
class ExponentialMovingAverage {
 public:
  static constexpr const char* kPrefix = "ema.";

  ExponentialMovingAverage(Named<T> params, double decay);
  ExponentialMovingAverage(const ExponentialMovingAverage&) = delete;
  ExponentialMovingAverage& operator=(const ExponentialMovingAverage&) = delete;

  void update();
  double decay() const { return decay_; }
  const Named<T>& params() const { return params_; }
  std::int64_t updates() const { return updates_(); }

  // Exchanges the averages and the parameters' values (no copy); a second call undoes it.
  // Does nothing before the first update.
  void swap();

  std::vector<TensorView> state() const;  // empty before the first update
  // Restores a state written by state() (or none: a run that never updated). Checks every
  // name, dtype and shape first and lists all problems in one exception naming `source`.
  void load_state(const NamedValues& state, const std::string& source);

 private:
  Named<T> params_;
  double decay_;
  std::vector<xt::xarray<T>> averages_;  // empty until the first update
  xt::xarray<std::int64_t> updates_ = xt::xarray<std::int64_t>(std::int64_t(0));  // 0-d
};

// The averaged weights in place while it lives (e.g. for an evaluation); the trained
// weights come back at the end of the scope, also when an exception leaves it.
template <class T>
class AveragedWeights {
 public:
  explicit AveragedWeights(ExponentialMovingAverage<T>* ema) : ema_(ema) {
    if (ema_) ema_->swap();
  }
  ~AveragedWeights() {
    if (ema_) ema_->swap();
  }
  AveragedWeights(const AveragedWeights&) = delete;
  AveragedWeights& operator=(const AveragedWeights&) = delete;

 private:
  ExponentialMovingAverage<T>* ema_;
};

}  // namespace flowgrad::nn
