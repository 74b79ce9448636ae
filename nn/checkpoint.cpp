#include "nn/checkpoint.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "autograd/instantiate.hpp"
#include "autograd/random.hpp"

namespace flowgrad::nn {

namespace {

template <class T>
std::vector<TensorView> module_views(const Module<T>& module) {
  std::vector<TensorView> views;
  for (auto& [name, t] : module.state()) views.emplace_back(name, t.value());
  return views;
}

// Which of the module's tensors each file tensor goes to; throws listing every problem.
template <class T>
std::vector<std::pair<Tensor<T>, const TensorValue*>> match_module_state(const Module<T>& module,
                                                                         const NamedValues& state,
                                                                         const std::string& source) {
  const Named<T> expected = module.state();
  std::map<std::string, const TensorValue*> given;
  StateMismatch bad;
  for (auto& [name, v] : state)
    if (!given.emplace(name, &v).second) bad.wrong.push_back(name + ": appears twice");
  std::vector<std::pair<Tensor<T>, const TensorValue*>> matched;
  for (auto& [name, t] : expected) {
    auto it = given.find(name);
    if (it == given.end()) { bad.missing.push_back(name); continue; }
    const TensorValue& v = *it->second;
    const DType dt = dtype_of(v);
    if ((dt != DType::F32 && dt != DType::F64) || shape_of(v) != t.shape())
      bad.wrong.push_back(name + ": found " + dtype_name(dt) + " " + shape_str(shape_of(v)) + ", expected " +
                          shape_str(t.shape()));
    else
      matched.emplace_back(t, &v);
    given.erase(it);
  }
  for (auto& [name, v] : state)
    if (given.count(name)) bad.unexpected.push_back(name);
  bad.throw_if_any(source + ": state does not fit the module");
  return matched;
}

// Whether the F32/F64 view holds a NaN or an infinity; `index` is the first one's.
template <class S>
bool first_non_finite(const TensorView& v, std::size_t& index) {
  const S* p = static_cast<const S*>(v.data);
  std::size_t n = 1;
  for (auto d : v.shape) n *= d;
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return index = i, true;
  return false;
}

void refuse_non_finite(const std::string& path, const std::vector<TensorView>& views) {
  for (const auto& v : views) {
    std::size_t index = 0;
    const bool bad = v.dtype == DType::F32   ? first_non_finite<float>(v, index)
                     : v.dtype == DType::F64 ? first_non_finite<double>(v, index)
                                             : false;
    if (bad)
      throw NonFiniteState(v.name, "not writing the checkpoint " + path + ": '" + v.name +
                                       "' holds a non-finite value (element " + std::to_string(index) +
                                       "); the file on disk is left as it was");
  }
}

template <class T>
void copy_into(Tensor<T> t, const TensorValue& v) {
  T* dst = t.value().data();
  std::visit([&](const auto& a) { std::transform(a.begin(), a.end(), dst, [](auto x) { return T(x); }); }, v);
}

}  // namespace

template <class T>
void save_module(const std::string& path, const Module<T>& module, const Metadata& metadata) {
  save_safetensors(path, module_views(module), metadata);
}

template <class T>
void load_module_state(Module<T>& module, const NamedValues& state, const std::string& source) {
  for (auto& [t, v] : match_module_state(module, state, source)) copy_into(t, *v);
}

template <class T>
Metadata load_module(const std::string& path, Module<T>& module) {
  SafeTensors file = load_safetensors(path);
  load_module_state(module, file.tensors, path);
  return file.metadata;
}

template <class T>
void save_checkpoint(const std::string& path, const Module<T>& module, const Optimizer<T>& optimizer,
                     Metadata metadata, const ExponentialMovingAverage<T>* ema) {
  metadata.emplace("step", std::to_string(optimizer.step_count()));
  metadata.emplace("rng", generator_state());
  std::vector<TensorView> views = module_views(module);
  for (auto& v : optimizer.state()) views.push_back(v);
  if (ema)
    for (auto& v : ema->state()) views.push_back(v);
  refuse_non_finite(path, views);  // a point to resume from must be one
  save_safetensors(path, views, metadata);
}

template <class T>
NamedValues module_part(const Module<T>& module, NamedValues file) {
  std::set<std::string> names;
  for (auto& [name, t] : module.state()) names.insert(name);
  NamedValues out;
  for (auto& [name, v] : file)
    if (names.count(name)) out.emplace_back(name, std::move(v));
  return out;
}

template <class T>
Metadata load_checkpoint(const std::string& path, Module<T>& module, Optimizer<T>& optimizer, bool restore_rng,
                         ExponentialMovingAverage<T>* ema) {
  SafeTensors file = load_safetensors(path);
  auto starts_with = [](const std::string& name, const std::string& prefix) {
    return name.compare(0, prefix.size(), prefix) == 0;
  };
  const std::string prefix = optimizer.kind() + ".";
  NamedValues model_part, optimizer_part, ema_part;
  for (auto& [name, v] : file.tensors) {
    NamedValues& to = starts_with(name, prefix)                                        ? optimizer_part
                      : ema && starts_with(name, ExponentialMovingAverage<T>::kPrefix) ? ema_part
                                                                                       : model_part;
    to.emplace_back(name, std::move(v));
  }

  // Check all, then change all: a bad file leaves module, optimizer and generator as they were.
  const auto matched = match_module_state(module, model_part, path);
  if (ema) ExponentialMovingAverage<T>(ema->params(), ema->decay()).load_state(ema_part, path);  // a check
  const std::string previous_rng = generator_state();
  auto rng = file.metadata.find("rng");
  if (restore_rng && rng != file.metadata.end()) {
    try {
      set_generator_state(rng->second);
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ": metadata 'rng' is not a generator state: " + e.what());
    }
  }
  try {
    optimizer.load_state(optimizer_part, path);
  } catch (...) {
    set_generator_state(previous_rng);
    throw;
  }
  if (ema) ema->load_state(ema_part, path);
  for (auto& [t, v] : matched) copy_into(t, *v);
  return file.metadata;
}

#define FLOWGRAD_INSTANTIATE(T)                                                                           \
  template void save_module<T>(const std::string&, const Module<T>&, const Metadata&);                   \
  template Metadata load_module<T>(const std::string&, Module<T>&);                                      \
  template void load_module_state<T>(Module<T>&, const NamedValues&, const std::string&);                \
  template void save_checkpoint<T>(const std::string&, const Module<T>&, const Optimizer<T>&, Metadata,  \
                                   const ExponentialMovingAverage<T>*);                                   \
  template Metadata load_checkpoint<T>(const std::string&, Module<T>&, Optimizer<T>&, bool,              \
                                       ExponentialMovingAverage<T>*);                                     \
  template NamedValues module_part<T>(const Module<T>&, NamedValues);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_INSTANTIATE)
#undef FLOWGRAD_INSTANTIATE

}  // namespace flowgrad::nn
