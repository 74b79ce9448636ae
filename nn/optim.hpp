// Optimizers with PyTorch's update rules (torch.optim 1.13: SGD, Adam/AdamW, Adamax),
// gradient-norm clipping and linear warmup.
//
// An optimizer takes `module.named_parameters()`. Its state (per-parameter buffers, per-
// parameter step counts as torch keeps them, and the number of step() calls) is exposed as
// named tensors "<kind>.<buffer>.<parameter name>", "<kind>.param_step.<parameter name>" and
// "<kind>.step", so a checkpoint stores it in the same safetensors file as the model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "nn/safetensors.hpp"

namespace flowgrad::nn {

template <class T = float>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient; the others are left alone.
  void step();
  // Drops the gradients (set_to_none, as the reference's train loop does).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  std::int64_t step_count() const { return step_count_(); }  // step() calls so far
  const Named<T>& params() const { return params_; }
  const std::string& kind() const { return kind_; }  // "adam", ...: prefix of the state names

  // Borrowed views of the state, valid until the next step() or load_state().
  std::vector<TensorView> state() const;
  // Restores a state written by state(). Names, dtypes and shapes are all checked first,
  // and every problem is listed in one exception naming `source`; nothing changes then.
  // F32 and F64 buffers are both accepted.
  void load_state(const NamedValues& state, const std::string& source = "optimizer state");

 protected:
  Optimizer(std::string kind, Named<T> params, double lr, std::vector<std::string> buffers,
            bool counts_param_steps);
  // Updates parameter i (n values at p, gradient g) with its buffers (buffer(i, b)).
  // param_step is the parameter's step count including this one (1 on its first update).
  virtual void update(std::size_t i, T* p, const T* g, std::size_t n, std::int64_t param_step) = 0;
  T* buffer(std::size_t i, std::size_t b) { return buffers_[i][b].data(); }

 private:
  std::string kind_;
  Named<T> params_;
  double lr_;
  std::vector<std::string> buffer_names_;
  bool counts_param_steps_;
  // Per parameter; created (zero) on its first update, as torch creates state lazily.
  std::vector<std::vector<xt::xarray<T>>> buffers_;
  std::vector<xt::xarray<std::int64_t>> param_steps_;  // 0-d
  std::vector<bool> has_state_;
  xt::xarray<std::int64_t> step_count_ = xt::xarray<std::int64_t>(std::int64_t(0));  // 0-d
};

// torch.optim.SGD: momentum buffer starts as the first gradient; nesterov needs momentum > 0
// and dampening 0.
template <class T = float>
class SGD : public Optimizer<T> {
 public:
  SGD(Named<T> params, double lr, double momentum = 0, double weight_decay = 0, bool nesterov = false,
      double dampening = 0);

 private:
  void update(std::size_t i, T* p, const T* g, std::size_t n, std::int64_t param_step) override;
  double momentum_, weight_decay_, dampening_;
  bool nesterov_;
};

// torch.optim.Adam (weight decay added to the gradient, L2), or torch.optim.AdamW when
// decoupled (parameters shrink by lr * weight_decay before the update).
template <class T = float>
class Adam : public Optimizer<T> {
 public:
  Adam(Named<T> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
       double weight_decay = 0, bool decoupled = false);

 private:
  void update(std::size_t i, T* p, const T* g, std::size_t n, std::int64_t param_step) override;
  double beta1_, beta2_, eps_, weight_decay_;
  bool decoupled_;
};

// torch.optim.Adamax: the second moment is an exponentially weighted infinity norm.
template <class T = float>
class Adamax : public Optimizer<T> {
 public:
  Adamax(Named<T> params, double lr = 2e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
         double weight_decay = 0);

 private:
  void update(std::size_t i, T* p, const T* g, std::size_t n, std::int64_t param_step) override;
  double beta1_, beta2_, eps_, weight_decay_;
};

// "adam", "adamw" or "adamax" (torch's defaults for the rest); weight_decay as each of
// them defines it. Throws std::invalid_argument naming the choices for another name.
template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const std::string& name, Named<T> params, double lr,
                                             double weight_decay = 0);

// torch.nn.utils.clip_grad_norm_: scales all gradients by min(1, max_norm / (norm + 1e-6))
// where norm is the 2-norm of all gradients together (parameters without one are skipped).
// Returns that norm (possibly inf or nan, as torch does with error_if_nonfinite=False).
template <class T>
double clip_grad_norm(const std::vector<Tensor<T>>& params, double max_norm);
template <class T>
double clip_grad_norm(const Named<T>& params, double max_norm);

// The learning rate of one segment of a run, step counted from 0: a linear warmup from
// `start` over `warmup` steps to base_lr (the reference's base_lr * min(1, (k + 1) / warmup)),
// then, when `end` > 0, a cosine decay that reaches 0 at step `end` (SGDR, Loshchilov &
// Hutter 2017). With end = 0 the rate stays at base_lr after the warmup, as the reference's.
struct LearningRateSchedule {
  double base_lr;
  std::int64_t warmup = 0;
  std::int64_t start = 0, end = 0;
  double lr(std::int64_t step) const;
};

// How many steps fit in `seconds` when a step takes step_seconds and an evaluation, which
// takes eval_seconds, comes every 1 / evals_per_step steps and once more at the end: how a
// run with a time budget plans where its learning rate reaches 0. At least 1.
std::int64_t steps_that_fit(double seconds, double step_seconds, double eval_seconds, double evals_per_step);

// Clipping that catches spikes instead of rescaling every step: a gradient whose norm is
// above `factor` times the running average of the norms so far is scaled down to that
// threshold. The average (of the norms after clipping) follows the run with weight
// `momentum`; the first step only starts it.
struct SpikeClipper {
  double factor;
  double momentum = 0.99;
  double average = 0;  // 0: no step seen yet
  std::int64_t clipped = 0;
  // Returns the gradients' norm before clipping (inf or nan are returned, not clipped).
  template <class T>
  double clip(const Named<T>& params);
};

}  // namespace flowgrad::nn
