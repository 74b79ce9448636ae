// The update loops run over raw pointers: NICE has 19M parameters, and an xtensor
// expression per buffer would allocate temporaries on every step.
#include "nn/optim.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include <xtensor/xbuilder.hpp>

#include "autograd/instantiate.hpp"
#include "autograd/kernels.hpp"
#include "autograd/simd.hpp"

namespace flowgrad::nn {

// --- Optimizer: the state every optimizer shares ----------------------------

template <class T>
Optimizer<T>::Optimizer(std::string kind, Named<T> params, double lr, std::vector<std::string> buffers,
                        bool counts_param_steps)
    : kind_(std::move(kind)), params_(std::move(params)), lr_(lr), buffer_names_(std::move(buffers)),
      counts_param_steps_(counts_param_steps) {
  std::set<std::string> names;
  for (auto& [name, t] : params_) {
    if (!t.defined()) throw std::invalid_argument(kind_ + ": parameter '" + name + "' is undefined");
    if (!names.insert(name).second)
      throw std::invalid_argument(kind_ + ": parameter name '" + name + "' appears twice");
  }
  if (!(lr >= 0)) throw std::invalid_argument(kind_ + ": learning rate " + std::to_string(lr) + " is not >= 0");
  buffers_.resize(params_.size());
  param_steps_.assign(params_.size(), xt::xarray<std::int64_t>(std::int64_t(0)));
  has_state_.assign(params_.size(), false);
}

template <class T>
void Optimizer<T>::step() {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    auto& [name, t] = params_[i];
    if (!t.has_grad()) continue;
    auto& value = t.value();
    const auto& grad = t.grad();
    if (grad.shape() != value.shape())
      throw ShapeError(kind_ + ".step: gradient of '" + name + "' has shape " + shape_str(to_shape(grad.shape())) +
                       ", the parameter " + shape_str(to_shape(value.shape())));
    if (!has_state_[i]) {
      const xt::xarray<T> zeros = xt::zeros<T>(value.shape());
      buffers_[i].assign(buffer_names_.size(), zeros);
      param_steps_[i]() = 0;
      has_state_[i] = true;
    }
    if (!buffers_[i].empty() && buffers_[i][0].shape() != value.shape())
      throw ShapeError(kind_ + ".step: parameter '" + name + "' changed shape to " +
                       shape_str(to_shape(value.shape())) + " after its state was made for " +
                       shape_str(to_shape(buffers_[i][0].shape())));
    param_steps_[i]() += 1;
    update(i, value.data(), grad.data(), value.size(), param_steps_[i]());
  }
  step_count_() += 1;
}

template <class T>
void Optimizer<T>::zero_grad() {
  for (auto& [name, t] : params_) t.zero_grad();
}

template <class T>
std::vector<TensorView> Optimizer<T>::state() const {
  std::vector<TensorView> out;
  out.emplace_back(kind_ + ".step", step_count_);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!has_state_[i]) continue;
    const std::string& name = params_[i].first;
    for (std::size_t b = 0; b < buffer_names_.size(); ++b)
      out.emplace_back(kind_ + "." + buffer_names_[b] + "." + name, buffers_[i][b]);
    if (counts_param_steps_) out.emplace_back(kind_ + ".param_step." + name, param_steps_[i]);
  }
  return out;
}

namespace {
// A non-negative I64 scalar, or "" with its value in `out`; otherwise what is wrong.
std::string as_count(const TensorValue& v, std::int64_t& out) {
  const auto* a = std::get_if<xt::xarray<std::int64_t>>(&v);
  if (!a || a->dimension() != 0 || (*a)() < 0)
    return std::string("found ") + dtype_name(dtype_of(v)) + " " + shape_str(shape_of(v)) +
           ", expected an I64 scalar >= 0";
  out = (*a)();
  return "";
}
}  // namespace

template <class T>
void Optimizer<T>::load_state(const NamedValues& state, const std::string& source) {
  const std::string prefix = kind_ + ".";
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < params_.size(); ++i) index[params_[i].first] = i;
  const std::size_t nb = buffer_names_.size();

  StateMismatch bad;
  std::set<std::string> seen;
  bool has_count = false;
  std::int64_t count = 0;
  std::vector<std::vector<const TensorValue*>> bufs(params_.size(), std::vector<const TensorValue*>(nb, nullptr));
  std::vector<std::int64_t> steps(params_.size(), -1);
  for (auto& [name, v] : state) {
    if (!seen.insert(name).second) { bad.wrong.push_back(name + ": appears twice"); continue; }
    if (name == kind_ + ".step") {
      const std::string why = as_count(v, count);
      if (!why.empty()) bad.wrong.push_back(name + ": " + why);
      has_count = true;
      continue;
    }
    // "<kind>.<field>.<parameter name>"
    const std::string rest = name.compare(0, prefix.size(), prefix) == 0 ? name.substr(prefix.size()) : "";
    const auto dot = rest.find('.');
    const std::string field = rest.substr(0, dot);
    const auto it = dot == std::string::npos ? index.end() : index.find(rest.substr(dot + 1));
    if (it == index.end()) { bad.unexpected.push_back(name); continue; }
    const std::size_t i = it->second;
    if (field == "param_step" && counts_param_steps_) {
      const std::string why = as_count(v, steps[i]);
      if (!why.empty()) bad.wrong.push_back(name + ": " + why);
      continue;
    }
    const auto b = std::find(buffer_names_.begin(), buffer_names_.end(), field) - buffer_names_.begin();
    if (std::size_t(b) == nb) { bad.unexpected.push_back(name); continue; }
    const DType dt = dtype_of(v);
    const Shape want = params_[i].second.shape();
    if ((dt != DType::F32 && dt != DType::F64) || shape_of(v) != want)
      bad.wrong.push_back(name + ": found " + dtype_name(dt) + " " + shape_str(shape_of(v)) + ", expected F32/F64 " +
                          shape_str(want));
    else
      bufs[i][b] = &v;
  }
  if (!has_count) bad.missing.push_back(kind_ + ".step");
  // A parameter has all of its state or none (it never had a gradient).
  for (std::size_t i = 0; i < params_.size(); ++i) {
    std::size_t present = steps[i] >= 0 ? 1 : 0;
    for (auto* p : bufs[i]) present += p != nullptr;
    const std::size_t total = nb + (counts_param_steps_ ? 1 : 0);
    if (present == 0 || present == total) continue;
    const std::string& name = params_[i].first;
    if (counts_param_steps_ && steps[i] < 0) bad.missing.push_back(prefix + "param_step." + name);
    for (std::size_t b = 0; b < nb; ++b)
      if (!bufs[i][b]) bad.missing.push_back(prefix + buffer_names_[b] + "." + name);
  }
  bad.throw_if_any(source + ": state does not fit this " + kind_ + " optimizer");

  step_count_() = count;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    has_state_[i] = nb > 0 ? bufs[i][0] != nullptr : steps[i] >= 0;
    buffers_[i].clear();
    if (!has_state_[i]) continue;
    for (std::size_t b = 0; b < nb; ++b) buffers_[i].push_back(float_array<T>(*bufs[i][b], source));
    // Without saved per-parameter counts (SGD), any count >= 1 means "not the first update".
    param_steps_[i]() = counts_param_steps_ ? steps[i] : std::max<std::int64_t>(count, 1);
  }
}

// --- SGD ---------------------------------------------------------------------

template <class T>
SGD<T>::SGD(Named<T> params, double lr, double momentum, double weight_decay, bool nesterov, double dampening)
    : Optimizer<T>("sgd", std::move(params), lr, momentum != 0 ? std::vector<std::string>{"momentum_buffer"}
                                                               : std::vector<std::string>{},
                   false),
      momentum_(momentum), weight_decay_(weight_decay), dampening_(dampening), nesterov_(nesterov) {
  if (nesterov && (momentum <= 0 || dampening != 0))
    throw std::invalid_argument("sgd: nesterov needs momentum > 0 and dampening 0");
}

template <class T>
void SGD<T>::update(std::size_t i, T* p, const T* g, std::size_t n, std::int64_t param_step) {
  const T wd = T(weight_decay_), mom = T(momentum_), keep = T(1 - dampening_), neg_lr = T(-this->lr());
  const bool first = param_step == 1;
  T* buf = momentum_ != 0 ? this->buffer(i, 0) : nullptr;
  for (std::size_t j = 0; j < n; ++j) {
    T d = g[j];
    if (weight_decay_ != 0) d = d + wd * p[j];
    if (buf) {
      buf[j] = first ? d : buf[j] * mom + keep * d;  // torch starts the buffer at the gradient
      d = nesterov_ ? d + mom * buf[j] : buf[j];
    }
    p[j] = p[j] + neg_lr * d;
  }
}

// --- Adam / AdamW ------------------------------------------------------------

template <class T>
Adam<T>::Adam(Named<T> params, double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled)
    : Optimizer<T>(decoupled ? "adamw" : "adam", std::move(params), lr, {"exp_avg", "exp_avg_sq"}, true),
      beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay), decoupled_(decoupled) {
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
    throw std::invalid_argument("adam: betas must lie in [0, 1)");
}

namespace {

template <class T>
struct AdamScalars {
  T b1, b2, one_b1, one_b2, neg_step, bias2_sqrt, eps, l2, shrink;
};

// The build targets plain x86-64, where Adam's square roots and divisions on 4 lanes make
// it compute-bound: also compiled for AVX2 and AVX-512, picked at load time. Without
// fused multiply-adds, so every clone rounds as torch does.
#if defined(__GNUC__) && !defined(__clang__)
#define FLOWGRAD_NO_FMA __attribute__((optimize("fp-contract=off")))
#else
#define FLOWGRAD_NO_FMA
#endif

// One Adam update, each op in torch's order. The loop vectorizes (the build passes
// -fno-math-errno, without which GCC will not vectorize std::sqrt).
template <class T>
FLOWGRAD_SIMD_CLONES FLOWGRAD_NO_FMA void adam_span(T* p, const T* g, T* m, T* v, std::size_t n, const AdamScalars<T>& s) {
  for (std::size_t j = 0; j < n; ++j) {
    const T pj = p[j] * s.shrink;
    const T gj = g[j] + s.l2 * pj;
    m[j] = m[j] * s.b1 + s.one_b1 * gj;
    v[j] = v[j] * s.b2 + s.one_b2 * gj * gj;
    const T denom = std::sqrt(v[j]) / s.bias2_sqrt + s.eps;
    p[j] = pj + s.neg_step * m[j] / denom;
  }
}

}  // namespace

template <class T>
void Adam<T>::update(std::size_t i, T* p, const T* g, std::size_t n, std::int64_t param_step) {
  const double lr = this->lr();
  // Scalars as torch computes them: in double, then rounded to T by the tensor op.
  const double bias1 = 1 - std::pow(beta1_, double(param_step));
  const double bias2 = 1 - std::pow(beta2_, double(param_step));
  AdamScalars<T> s;
  s.b1 = T(beta1_), s.b2 = T(beta2_), s.one_b1 = T(1 - beta1_), s.one_b2 = T(1 - beta2_);
  s.neg_step = T(-(lr / bias1)), s.bias2_sqrt = T(std::sqrt(bias2)), s.eps = T(eps_);
  // AdamW shrinks the parameter first; Adam adds weight_decay * p to the gradient (L2).
  s.l2 = decoupled_ ? T(0) : T(weight_decay_);
  s.shrink = T(decoupled_ ? 1 - lr * weight_decay_ : 1);
  T* m = this->buffer(i, 0);
  T* v = this->buffer(i, 1);
  // Element-wise: pieces on several threads give the same bits as one loop.
  kernels::for_range(n, [&](std::size_t lo, std::size_t hi) {
    adam_span(p + lo, g + lo, m + lo, v + lo, hi - lo, s);
  });
}

// --- Adamax ------------------------------------------------------------------

template <class T>
Adamax<T>::Adamax(Named<T> params, double lr, double beta1, double beta2, double eps, double weight_decay)
    : Optimizer<T>("adamax", std::move(params), lr, {"exp_avg", "exp_inf"}, true),
      beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay) {
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1))
    throw std::invalid_argument("adamax: betas must lie in [0, 1)");
}

template <class T>
void Adamax<T>::update(std::size_t i, T* p, const T* g, std::size_t n, std::int64_t param_step) {
  const T b1 = T(beta1_), b2 = T(beta2_), one_b1 = T(1 - beta1_), eps = T(eps_), wd = T(weight_decay_);
  const T neg_clr = T(-(this->lr() / (1 - std::pow(beta1_, double(param_step)))));
  T* m = this->buffer(i, 0);
  T* u = this->buffer(i, 1);
  kernels::for_range(n, [&](std::size_t lo, std::size_t hi) {  // element-wise: same bits on any threads
    for (std::size_t j = lo; j < hi; ++j) {
      const T gj = g[j] + wd * p[j];
      m[j] = m[j] * b1 + one_b1 * gj;
      const T decayed = u[j] * b2, now = std::abs(gj) + eps;
      u[j] = (decayed < now || now != now) ? now : decayed;  // max that propagates NaN, like torch.amax
      p[j] = p[j] + neg_clr * m[j] / u[j];
    }
  });
}

// --- clipping and schedules --------------------------------------------------

template <class T>
double clip_grad_norm(const std::vector<Tensor<T>>& params, double max_norm) {
  double acc[4] = {0, 0, 0, 0};  // independent sums: no add waits for the previous one
  for (auto& t : params) {
    if (!t.has_grad()) continue;
    const T* g = t.grad().data();
    const std::size_t n = t.grad().size();
    std::size_t j = 0;
    for (; j + 4 <= n; j += 4)
      for (int k = 0; k < 4; ++k) acc[k] += double(g[j + k]) * double(g[j + k]);
    for (; j < n; ++j) acc[0] += double(g[j]) * double(g[j]);
  }
  const double norm = std::sqrt((acc[0] + acc[1]) + (acc[2] + acc[3]));
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1 || coef != coef) {  // torch multiplies always; by 1 changes nothing, by NaN spreads it
    const T c = T(coef);
    for (Tensor<T> t : params) {  // a handle: its grad is the parameter's
      if (!t.has_grad()) continue;
      T* g = t.grad().data();
      for (std::size_t j = 0, n = t.grad().size(); j < n; ++j) g[j] *= c;
    }
  }
  return norm;
}

template <class T>
double clip_grad_norm(const Named<T>& params, double max_norm) {
  std::vector<Tensor<T>> ts;
  for (auto& [name, t] : params) ts.push_back(t);
  return clip_grad_norm(ts, max_norm);
}

double LearningRateSchedule::lr(std::int64_t step) const {
  const std::int64_t k = step - start;
  double rate = base_lr;
  if (warmup > 0) rate *= std::clamp(double(k + 1) / double(warmup), 0.0, 1.0);
  if (end > 0) {
    const double decay_steps = double(std::max<std::int64_t>(end - start - warmup, 1));
    const double progress = std::clamp(double(k - warmup) / decay_steps, 0.0, 1.0);
    rate *= 0.5 * (1 + std::cos(M_PI * progress));
  }
  return rate;
}

std::int64_t steps_that_fit(double seconds, double step_seconds, double eval_seconds, double evals_per_step) {
  const double n = (seconds - eval_seconds) / (step_seconds + evals_per_step * eval_seconds);
  return n >= 1 && std::isfinite(n) ? std::int64_t(n) : 1;
}

template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const std::string& name, Named<T> params, double lr,
                                             double weight_decay) {
  if (name == "adam") return std::make_unique<Adam<T>>(std::move(params), lr, 0.9, 0.999, 1e-8, weight_decay);
  if (name == "adamw") return std::make_unique<Adam<T>>(std::move(params), lr, 0.9, 0.999, 1e-8, weight_decay, true);
  if (name == "adamax") return std::make_unique<Adamax<T>>(std::move(params), lr, 0.9, 0.999, 1e-8, weight_decay);
  throw std::invalid_argument("unknown optimizer '" + name + "' (expected adam, adamw or adamax)");
}

template <class T>
double SpikeClipper::clip(const Named<T>& params) {
  const double norm = clip_grad_norm(params, INFINITY);  // only measures
  if (!std::isfinite(norm)) return norm;
  double kept = norm;
  if (average > 0 && norm > factor * average) {
    kept = factor * average;
    clip_grad_norm(params, kept);
    ++clipped;
  }
  average = average > 0 ? momentum * average + (1 - momentum) * kept : kept;
  return norm;
}

#define FLOWGRAD_INSTANTIATE(T)                                              \
  template class Optimizer<T>;                                               \
  template class SGD<T>;                                                     \
  template class Adam<T>;                                                    \
  template class Adamax<T>;                                                  \
  template double clip_grad_norm<T>(const std::vector<Tensor<T>>&, double);  \
  template double clip_grad_norm<T>(const Named<T>&, double);  \
  template double SpikeClipper::clip<T>(const Named<T>&);                    \
  template std::unique_ptr<Optimizer<T>> make_optimizer<T>(const std::string&, Named<T>, double, double);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_INSTANTIATE)
#undef FLOWGRAD_INSTANTIATE

}  // namespace flowgrad::nn
