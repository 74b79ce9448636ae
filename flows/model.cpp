#include "flows/model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <xtensor/xbuilder.hpp>

#include "autograd/instantiate.hpp"
#include "autograd/shape.hpp"
#include "flows/actnorm.hpp"

namespace flowgrad::flows {

template <class T>
std::size_t FlowModel<T>::dims() const {
  std::size_t d = 1;
  for (auto s : input_shape_) d *= s;
  return d;
}

template <class T>
void FlowModel<T>::check_input(const char* op, const Tensor<T>& x) const {
  const Shape s = x.shape();
  if (s.size() != input_shape_.size() + 1 || !std::equal(input_shape_.begin(), input_shape_.end(), s.begin() + 1))
    throw ShapeError(name_ + "::" + op + ": expected a batch of " + shape_str(input_shape_) + ", got " +
                     shape_str(s));
}

template <class T>
void FlowModel<T>::check_context(const char* op, const Tensor<T>& context, std::size_t batch) const {
  if (!classes()) {
    if (context.defined()) throw std::invalid_argument(name_ + "::" + op + ": this model is not class-conditional");
    return;
  }
  if (!context.defined())
    throw std::invalid_argument(name_ + "::" + op + ": a class-conditional model needs the classes (a context)");
  const Shape s = context.shape();
  if (s != Shape{batch, classes()})
    throw ShapeError(name_ + "::" + op + ": expected a context of " + shape_str(Shape{batch, classes()}) +
                     " (one-hot classes), got " + shape_str(s));
}

template <class T>
std::shared_ptr<Distribution<T>> FlowModel<T>::top_prior_given(const Tensor<T>&) const {
  return top_prior_;
}

template <class T>
typename FlowModel<T>::Pass FlowModel<T>::run(const Tensor<T>& x) {
  Pass out;
  Tensor<T> h = x, logdet;
  auto accumulate = [&logdet](const Tensor<T>& term) { logdet = logdet.defined() ? logdet + term : term; };
  if (preprocess_) {
    auto r = preprocess_->forward(h);
    h = r.y;
    accumulate(r.logdet);
  }
  for (auto& level : levels_) {
    auto r = level.flow->forward(h);
    h = r.y;
    accumulate(r.logdet);
    if (level.split) {
      auto parts = level.split->split(h);
      out.latents.zs.push_back(parts.z);
      out.kept.push_back(parts.kept);
      h = parts.kept;
    }
  }
  out.latents.zs.push_back(h);
  out.latents.logdet = logdet.defined() ? logdet : zero_logdet<T>(x.shape()[0]);
  return out;
}

namespace {
// A split's prior sees the classes only when it is conditioned on them.
template <class T>
Tensor<T> context_for(const Split<T>& split, const Tensor<T>& context) {
  return split.conditional() ? context : Tensor<T>();
}
}  // namespace

template <class T>
std::vector<Tensor<T>> FlowModel<T>::split_features(const Pass& pass) const {
  std::vector<Tensor<T>> out;
  std::size_t i = 0;
  for (auto& level : levels_)
    if (level.split) out.push_back(level.split->prior_features(pass.kept[i++]));
  return out;
}

template <class T>
Tensor<T> FlowModel<T>::splits_log_prob(const Pass& pass, const std::vector<Tensor<T>>& features,
                                        const Tensor<T>& context) const {
  Tensor<T> total;
  std::size_t i = 0;
  for (auto& level : levels_) {
    if (!level.split) continue;
    auto term = level.split->prior_from(features[i], context_for(*level.split, context))->log_prob(pass.latents.zs[i]);
    total = total.defined() ? total + term : term;
    ++i;
  }
  return total;
}

template <class T>
Latents<T> FlowModel<T>::forward(const Tensor<T>& x) {
  check_input("forward", x);
  return run(x).latents;
}

template <class T>
Tensor<T> FlowModel<T>::log_prob(const Tensor<T>& x) {
  return log_prob(x, Tensor<T>());
}

template <class T>
Tensor<T> FlowModel<T>::log_prob(const Tensor<T>& x, const Tensor<T>& context) {
  check_input("log_prob", x);
  check_context("log_prob", context, x.shape()[0]);
  auto pass = run(x);
  return total_log_prob(pass, splits_log_prob(pass, split_features(pass), context), top_prior_given(context)->log_prob(pass.latents.zs.back()));
}

// The splits' log p, then the top latent's, then the log-det: one order for every caller.
template <class T>
Tensor<T> FlowModel<T>::total_log_prob(const Pass& pass, const Tensor<T>& splits, const Tensor<T>& top) const {
  const Tensor<T> log_prior = splits.defined() ? splits + top : top;
  return log_prior + pass.latents.logdet;
}

template <class T>
Tensor<T> FlowModel<T>::log_prob_each_class(const Tensor<T>& x) {
  check_input("log_prob_each_class", x);
  if (!classes()) throw std::invalid_argument(name_ + "::log_prob_each_class: this model is not class-conditional");
  const std::size_t n = x.shape()[0];
  // The flow is the same for every class: run it once, and the priors once per class (the
  // splits' once for all when none of them is conditioned on the class).
  auto pass = run(x);
  const Tensor<T>& top = pass.latents.zs.back();
  const auto features = split_features(pass);
  const bool splits_conditional =
      std::any_of(levels_.begin(), levels_.end(), [](const Level& l) { return l.split && l.split->conditional(); });
  const Tensor<T> shared_splits = splits_conditional ? Tensor<T>() : splits_log_prob(pass, features, Tensor<T>());
  std::vector<Tensor<T>> columns;
  for (std::size_t k = 0; k < classes(); ++k) {
    const Tensor<T> context = one_hot<T>(std::vector<std::uint8_t>(n, std::uint8_t(k)), classes());
    const Tensor<T> splits = splits_conditional ? splits_log_prob(pass, features, context) : shared_splits;
    columns.push_back(reshape(total_log_prob(pass, splits, top_prior_given(context)->log_prob(top)), {n, std::size_t(1)}));
  }
  return concat(columns, 1);
}

template <class T>
FlowResult<T> FlowModel<T>::inverse(const std::vector<Tensor<T>>& zs) {
  std::size_t splits = 0;
  for (auto& level : levels_) splits += level.split ? 1 : 0;
  if (zs.size() != splits + 1)
    throw ShapeError(name_ + "::inverse: expected " + std::to_string(splits + 1) + " latents, got " +
                     std::to_string(zs.size()));
  Tensor<T> h = zs.back(), logdet;
  auto accumulate = [&logdet](const Tensor<T>& term) { logdet = logdet.defined() ? logdet + term : term; };
  std::size_t next = splits;
  for (auto it = levels_.rbegin(); it != levels_.rend(); ++it) {
    if (it->split) h = it->split->merge(h, zs[--next]);
    auto r = it->flow->inverse(h);
    h = r.y;
    accumulate(r.logdet);
  }
  if (preprocess_) {
    auto r = preprocess_->inverse(h);
    h = r.y;
    accumulate(r.logdet);
  }
  return {h, logdet.defined() ? logdet : zero_logdet<T>(h.shape().at(0))};
}

template <class T>
Samples<T> FlowModel<T>::sample_checked(std::size_t n, T temperature) {
  return sample_checked(n, temperature, Tensor<T>());
}

template <class T>
Samples<T> FlowModel<T>::sample_checked(std::size_t n, T temperature, const Tensor<T>& context) {
  check_context("sample", context, n);
  NoGrad no_grad;
  Shape top{n};
  top.insert(top.end(), top_shape_.begin(), top_shape_.end());
  Tensor<T> h = top_prior_given(context)->sample(top, temperature);
  for (auto it = levels_.rbegin(); it != levels_.rend(); ++it) {
    if (it->split) h = it->split->merge(h, it->split->sample(h, temperature, context_for(*it->split, context)));
    h = it->flow->inverse(h).y;
  }
  Samples<T> out;
  const std::size_t per = n ? h.size() / n : 0;
  const T* v = h.value().data();
  for (std::size_t i = 0; i < n; ++i)
    out.finite.push_back(std::all_of(v + i * per, v + (i + 1) * per, [](T a) { return std::isfinite(a); }));
  if (preprocess_) h = preprocess_->inverse(h).y;
  out.x = h;
  return out;
}

template <class T>
std::optional<std::string> FlowModel<T>::reference_name(const std::string& ours) const {
  const std::string extra = "initialized";
  if (ours.rfind("dequantizer.", 0) == 0) return std::nullopt;  // the reference dequantizes uniformly
  if (ours == extra || (ours.size() > extra.size() &&
                        ours.compare(ours.size() - extra.size() - 1, std::string::npos, "." + extra) == 0))
    return std::nullopt;
  return ours;
}

namespace {
template <class T>
void set_data_init(nn::Module<T>& m, bool on) {
  if (auto* a = dynamic_cast<ActNorm<T>*>(&m)) a->set_data_init(on);
  for (auto& [name, child] : m.children()) set_data_init(*child, on);
}
}  // namespace

template <class T>
void FlowModel<T>::set_actnorm_data_init(bool on) {
  set_data_init<T>(*this, on);
}

template <class T>
void FlowModel<T>::initialize_from_data(const Tensor<T>& x) {
  NoGrad no_grad;
  const bool was_training = this->is_training();
  this->train(true);
  forward(x);  // the flows hold every ActNorm; the priors (and a class context) are not needed
  this->train(was_training);
}

template <class T>
Tensor<T> one_hot(const std::vector<std::uint8_t>& labels, std::size_t classes) {
  xt::xarray<T> rows = xt::zeros<T>({labels.size(), classes});
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= classes)
      throw std::invalid_argument("one_hot: label " + std::to_string(labels[i]) + " of example " + std::to_string(i) +
                                  " is not one of the " + std::to_string(classes) + " classes");
    rows(i, labels[i]) = T(1);
  }
  return Tensor<T>(std::move(rows));
}

template <class T>
Tensor<T> class_nll(const Tensor<T>& each_class, const Tensor<T>& context) {
  if (each_class.dim() != 2 || context.shape() != each_class.shape())
    throw ShapeError("class_nll: scores " + shape_str(each_class.shape()) + " and one-hot classes " +
                     shape_str(context.shape()) + " must both be (B, classes)");
  return logsumexp(each_class, {1}) - sum(each_class * context, {1});
}

#define FLOWGRAD_MODEL(T) \
  template class FlowModel<T>; \
  template Tensor<T> one_hot<T>(const std::vector<std::uint8_t>&, std::size_t); \
  template Tensor<T> class_nll<T>(const Tensor<T>&, const Tensor<T>&);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_MODEL)

}  // namespace flowgrad::flows
