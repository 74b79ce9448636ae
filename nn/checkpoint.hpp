// Saving and loading a module's state, and whole training checkpoints, as safetensors.
//
// A module file holds module.state() (parameters then buffers, PyTorch's dotted names),
// F32 for a float module and F64 for a double one, so Python reads it as a state_dict.
// A checkpoint adds the optimizer's state ("adam.exp_avg.<name>", ...), the moving average
// of the parameters if there is one ("ema.<name>"), and metadata
// ("step", "rng" = flowgrad::generator_state(), plus whatever the caller passes, e.g. the
// config as JSON) to the same file. Both are written atomically.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include "nn/ema.hpp"
#include "nn/module.hpp"
#include "nn/optim.hpp"
#include "nn/safetensors.hpp"

namespace flowgrad::nn {

template <class T>
void save_module(const std::string& path, const Module<T>& module, const Metadata& metadata = {});

// Copies the file's tensors into the module's own tensors, which the layers share, and
// returns the file's metadata. F32 and F64 are both accepted. Every missing, unexpected or
// mis-shaped tensor is named in one exception, and the module is then left unchanged.
template <class T>
Metadata load_module(const std::string& path, Module<T>& module);

// The same from tensors in memory; `source` names them in errors.
template <class T>
void load_module_state(Module<T>& module, const NamedValues& state, const std::string& source);

// A checkpoint whose model, optimizer or average holds a NaN or an infinity: not written.
struct NonFiniteState : std::runtime_error {
  std::string tensor;  // its name in the file, e.g. "flow.0.actnorm.bias" or "adam.exp_avg.x"
  NonFiniteState(std::string tensor, const std::string& message)
      : std::runtime_error(message), tensor(std::move(tensor)) {}
};

// Metadata "step" (optimizer.step_count()) and "rng" are added unless the caller gives them.
// Refuses (NonFiniteState, before anything is written) a state that is not finite.
template <class T>
void save_checkpoint(const std::string& path, const Module<T>& module, const Optimizer<T>& optimizer,
                     Metadata metadata = {}, const ExponentialMovingAverage<T>* ema = nullptr);

// Restores module, optimizer, the moving average (when one is given) and (if restore_rng
// and the file has "rng") the random generator; returns the metadata. Everything is
// checked before anything changes.
template <class T>
Metadata load_checkpoint(const std::string& path, Module<T>& module, Optimizer<T>& optimizer,
                         bool restore_rng = true, ExponentialMovingAverage<T>* ema = nullptr);

// The tensors of `file` that carry one of the module's state names (a checkpoint's other
// tensors, the optimizer's and the average's, are left out): what inference loads.
template <class T>
NamedValues module_part(const Module<T>& module, NamedValues file);

}  // namespace flowgrad::nn
