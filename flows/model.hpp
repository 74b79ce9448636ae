// FlowModel: preprocessing + a multi-scale flow + priors, the common shape of NICE,
// Real NVP and Glow. A model is a list of levels; each level is a flow, optionally
// followed by a Split that factors out half of the channels as a finished latent.
//
//   forward(x)      -> {zs, logdet}: zs = [z of level 0's split, ..., top latent]
//   inverse(zs)     -> {x, logdet of the inverse map}
//   log_prob(x)     =  sum of the priors' log p over zs + logdet, per example (B,)
//   sample(n, T)    every level's latent drawn with its prior's sigma scaled by T, then
//                   inverted to data; runs under NoGrad. sample_checked also says which
//                   samples were finite before the preprocessing's inverse (a final
//                   sigmoid would hide an overflow as 0 or 1).
// A class-conditional model (classes() > 0, as openai/glow's ycond) takes a context, one
// one-hot row per example (one_hot(labels, classes)), that sets the top latent's prior (and
// the splits' priors, where they are conditioned too):
//   log_prob(x, context) = log p(x | y);  log_prob_each_class(x) = log p(x | y = k), (B, K)
//
// Derived models register their modules under the reference's names and fill the levels
// with flows that point at them (the level flows themselves are not registered).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flows/dequantization.hpp"
#include "flows/distributions.hpp"
#include "flows/flow.hpp"
#include "flows/split.hpp"
#include "nn/module.hpp"

namespace flowgrad::flows {

template <class T>
struct Samples {
  Tensor<T> x;               // in data space
  std::vector<bool> finite;  // per sample: every value finite before the preprocessing's inverse
};

template <class T>
struct Latents {
  std::vector<Tensor<T>> zs;  // factored-out latents in level order, the top one last
  Tensor<T> logdet;           // (B,)
};

// A list of modules named "0", "1", ... (torch.nn.ModuleList).
template <class T = float>
class ModuleList : public nn::Module<T> {
 public:
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return this->register_module(std::to_string(this->children().size()), std::move(m));
  }
  std::size_t size() const { return this->children().size(); }
};

template <class T = float>
class FlowModel : public nn::Module<T> {
 public:
  Latents<T> forward(const Tensor<T>& x);
  FlowResult<T> inverse(const std::vector<Tensor<T>>& zs);
  Tensor<T> log_prob(const Tensor<T>& x);
  Tensor<T> sample(std::size_t n, T temperature = 1) { return sample_checked(n, temperature).x; }
  Samples<T> sample_checked(std::size_t n, T temperature = 1);

  // Class-conditional models: 0 classes means unconditional (and an undefined context).
  virtual std::size_t classes() const { return 0; }
  Tensor<T> log_prob(const Tensor<T>& x, const Tensor<T>& context);
  Tensor<T> log_prob_each_class(const Tensor<T>& x);  // the flow runs once, the priors K times
  Samples<T> sample_checked(std::size_t n, T temperature, const Tensor<T>& context);

  // Variational dequantization: q(u | pixels), registered as the child "dequantizer" (so it
  // trains, averages, checkpoints and broadcasts with the model); null: uniform noise.
  void set_dequantizer(std::shared_ptr<VariationalDequantizer<T>> d) {
    dequantizer_ = this->register_module("dequantizer", std::move(d));
  }
  VariationalDequantizer<T>* dequantizer() const { return dequantizer_.get(); }

  const Shape& input_shape() const { return input_shape_; }  // per example, e.g. (1, 28, 28)
  std::size_t dims() const;                                   // D = values per example
  const std::string& name() const { return name_; }

  // The reference's state_dict name for one of our parameter/buffer names, or nullopt when
  // the reference has no such tensor (ActNorm's `initialized`). Identity otherwise: the
  // models are built with the reference's names.
  virtual std::optional<std::string> reference_name(const std::string& ours) const;
  // ActNorm's data-dependent init on/off for every ActNorm in the model.
  void set_actnorm_data_init(bool on);
  // That init now, from x, for the ActNorms not yet initialised (one forward in training
  // mode, without a tape): data-parallel ranks give it the whole global batch, as one
  // process's first step would.
  void initialize_from_data(const Tensor<T>& x);

 protected:
  struct Level {
    std::shared_ptr<Flow<T>> flow;
    std::shared_ptr<Split<T>> split;  // null: nothing factored out after this level
  };
  std::string name_;
  Shape input_shape_;
  std::shared_ptr<Flow<T>> preprocess_;  // e.g. Logit; null for none
  std::vector<Level> levels_;
  std::shared_ptr<Distribution<T>> top_prior_;
  Shape top_shape_;  // per example
  std::shared_ptr<VariationalDequantizer<T>> dequantizer_;
  // The top latent's prior given a context of (B, classes()) rows; top_prior_ by default.
  virtual std::shared_ptr<Distribution<T>> top_prior_given(const Tensor<T>& context) const;

 private:
  struct Pass {
    Latents<T> latents;
    std::vector<Tensor<T>> kept;  // the half each split kept (its prior's input), in level order
  };
  Pass run(const Tensor<T>& x);  // the flow alone, no prior
  // Each split's prior_features of its kept half: computed once, whatever the classes tried.
  std::vector<Tensor<T>> split_features(const Pass& pass) const;
  // The splits' latents' log p summed, (B,); undefined without splits.
  Tensor<T> splits_log_prob(const Pass& pass, const std::vector<Tensor<T>>& features, const Tensor<T>& context) const;
  Tensor<T> total_log_prob(const Pass& pass, const Tensor<T>& splits, const Tensor<T>& top) const;
  void check_input(const char* op, const Tensor<T>& x) const;
  void check_context(const char* op, const Tensor<T>& context, std::size_t batch) const;
};

// One-hot rows (B, classes) of class labels: a class-conditional model's context. Throws
// std::invalid_argument for a label >= classes.
template <class T>
Tensor<T> one_hot(const std::vector<std::uint8_t>& labels, std::size_t classes);

// The generative classifier's loss -log p(y | x) with p(y) uniform, (B,), from
// log_prob_each_class's (B, K) and the one-hot classes (B, K): logsumexp_k log p(x | k) -
// log p(x | y). Added to -log p(x | y) with a weight it is a hybrid objective (openai/glow's
// weight_y, on the generative classifier itself).
template <class T>
Tensor<T> class_nll(const Tensor<T>& each_class, const Tensor<T>& context);

}  // namespace flowgrad::flows
