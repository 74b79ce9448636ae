#include "nn/ema.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "autograd/instantiate.hpp"
#include "autograd/kernels.hpp"

namespace flowgrad::nn {

template <class T>
ExponentialMovingAverage<T>::ExponentialMovingAverage(Named<T> params, double decay)
    : params_(std::move(params)), decay_(decay) {
  if (!(decay >= 0 && decay < 1))
    throw std::invalid_argument("ExponentialMovingAverage: decay must be in [0, 1), got " + std::to_string(decay));
}

template <class T>
void ExponentialMovingAverage<T>::update() {
  if (averages_.empty()) {
    for (auto& [name, p] : params_) averages_.push_back(p.value());
  } else {
    const double n = double(updates_());
    const T d = T(std::min(decay_, (1 + n) / (10 + n))), keep = T(1) - d;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const T* p = params_[i].second.value().data();
      T* a = averages_[i].data();
      kernels::for_range(averages_[i].size(), [&](std::size_t lo, std::size_t hi) {
        for (std::size_t j = lo; j < hi; ++j) a[j] = d * a[j] + keep * p[j];
      });
    }
  }
  updates_() += 1;
}

template <class T>
void ExponentialMovingAverage<T>::swap() {
  for (std::size_t i = 0; i < averages_.size(); ++i) std::swap(params_[i].second.value(), averages_[i]);
}

template <class T>
std::vector<TensorView> ExponentialMovingAverage<T>::state() const {
  std::vector<TensorView> out;
  if (averages_.empty()) return out;
  out.emplace_back(std::string(kPrefix) + "updates", updates_);
  for (std::size_t i = 0; i < params_.size(); ++i) out.emplace_back(kPrefix + params_[i].first, averages_[i]);
  return out;
}

template <class T>
void ExponentialMovingAverage<T>::load_state(const NamedValues& state, const std::string& source) {
  std::map<std::string, const TensorValue*> given;
  StateMismatch bad;
  for (auto& [name, v] : state)
    if (!given.emplace(name, &v).second) bad.wrong.push_back(name + ": appears twice");
  std::int64_t updates = 0;
  std::vector<const TensorValue*> found;
  if (!state.empty()) {
    const std::string count_name = std::string(kPrefix) + "updates";
    auto c = given.find(count_name);
    if (c == given.end()) {
      bad.missing.push_back(count_name);
    } else {
      const auto* a = std::get_if<xt::xarray<std::int64_t>>(c->second);
      if (!a || a->dimension() != 0 || (*a)() < 1)
        bad.wrong.push_back(count_name + ": found " + dtype_name(dtype_of(*c->second)) + " " +
                            shape_str(shape_of(*c->second)) + ", expected an I64 scalar >= 1");
      else
        updates = (*a)();
      given.erase(c);
    }
    for (auto& [name, p] : params_) {
      auto it = given.find(kPrefix + name);
      if (it == given.end()) { bad.missing.push_back(kPrefix + name); continue; }
      const DType dt = dtype_of(*it->second);
      if ((dt != DType::F32 && dt != DType::F64) || shape_of(*it->second) != p.shape())
        bad.wrong.push_back(kPrefix + name + ": found " + dtype_name(dt) + " " + shape_str(shape_of(*it->second)) +
                            ", expected F32/F64 " + shape_str(p.shape()));
      else
        found.push_back(it->second);
      given.erase(it);
    }
    for (auto& [name, v] : given) bad.unexpected.push_back(name);
  }
  bad.throw_if_any(source + ": state does not fit this moving average of the parameters");
  averages_.clear();
  for (auto* v : found) averages_.push_back(float_array<T>(*v, source));
  updates_() = updates;
}

#define FLOWGRAD_EMA(T) template class ExponentialMovingAverage<T>;
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_EMA)

}  // namespace flowgrad::nn
