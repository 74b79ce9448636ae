// Multi-scale factor-out: x (B, C, H, W) is cut into two channel halves; one half is a
// finished latent z (modelled by a prior), the other goes on through the deeper levels.
//
// Which half is factored out is a parameter: the reference's Real NVP factors out the
// FIRST half under N(0, I); its Glow keeps the first half and models the second with a
// learned conditional Gaussian: h = prior(kept), mean = h[:, 0::2], logs = h[:, 1::2].
//
// `log_scale_cap` c > 0 bounds that prior's sigma from above, softly: logs <= 0 is kept,
// logs > 0 becomes c tanh(logs / c) (smooth at 0), so sigma < e^c. The prior's logs is
// the one map in Glow's sampling direction that grows exponentially with its input: a
// tail latent makes logs large, the next level's input huge, and the sample overflows.
// Small sigmas, which fit the data's flat backgrounds, stay free. 0: unbounded (the reference).
//
// A class-conditional split (set_class_map, child "class_map") adds a class_shift of the
// one-hot context to the prior network's output: p(z | kept, y).
#pragma once

#include <memory>

#include "flows/distributions.hpp"
#include "nn/linear.hpp"
#include "nn/module.hpp"

namespace flowgrad::flows {

enum class FactorOut { First, Second };

template <class T = float>
class Split : public nn::Module<T> {
 public:
  // Standard Gaussian prior on the factored-out half.
  explicit Split(FactorOut which);
  // Conditional Gaussian prior computed from the kept half (child "prior"; maps C/2 -> C).
  Split(FactorOut which, std::shared_ptr<nn::Layer<T>> prior, double log_scale_cap = 0);

  struct Parts {
    Tensor<T> kept, z;
  };
  Parts split(const Tensor<T>& x) const;
  Tensor<T> merge(const Tensor<T>& kept, const Tensor<T>& z) const;  // inverse of split

  // Conditions the prior on the class: a map made by make_class_map (needs a prior network).
  void set_class_map(std::shared_ptr<nn::Linear<T>> map);
  bool conditional() const { return bool(class_map); }

  // The prior of z given the kept half (a StandardGaussian or a DiagonalGaussian), and the
  // one-hot classes (B, K) when conditional (an undefined context otherwise).
  std::shared_ptr<Distribution<T>> prior_given(const Tensor<T>& kept, const Tensor<T>& context = {});
  // prior_given in two parts, for callers that try every class on one kept half: the prior
  // network's output (B, 2C, H, W), the same for every class (undefined without a network),
  // then the distribution those features and a context give.
  Tensor<T> prior_features(const Tensor<T>& kept);
  std::shared_ptr<Distribution<T>> prior_from(const Tensor<T>& features, const Tensor<T>& context = {}) const;
  Tensor<T> log_prob(const Tensor<T>& kept, const Tensor<T>& z, const Tensor<T>& context = {});  // (B,)
  // z for this kept half with the prior's sigma scaled by temperature.
  Tensor<T> sample(const Tensor<T>& kept, T temperature, const Tensor<T>& context = {});

  FactorOut which() const { return which_; }
  double log_scale_cap() const { return log_scale_cap_; }
  std::shared_ptr<nn::Layer<T>> prior;  // null for N(0, I)
  std::shared_ptr<nn::Linear<T>> class_map;  // null: not class-conditional

 private:
  FactorOut which_;
  double log_scale_cap_ = 0;
};

}  // namespace flowgrad::flows
