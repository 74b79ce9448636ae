// safetensors files (https://github.com/huggingface/safetensors): 8-byte little-endian
// header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets"}, ...,
// "__metadata__": {"key": "value"}}, then the tensors' bytes, row-major, little-endian.
// Writing is atomic (autograd/atomic_file.hpp); reading validates every field before it
// allocates, and throws SafetensorsError naming the file, the problem and the byte offset.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/atomic_file.hpp"
#include "autograd/tensor.hpp"

namespace flowgrad::nn {

// A file that cannot be read, written or used: the message names the file, the problem
// and, for a malformed file, the byte offset. Every error of this header is one.
struct SafetensorsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// No array in a header needs more entries: a shape has at most this many dimensions.
inline constexpr std::size_t kMaxRank = 64;

enum class DType { F32, F64, I64, U8 };

const char* dtype_name(DType d);  // "F32", ...
std::size_t dtype_size(DType d);  // bytes per element

template <class S> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::U8; }

// One loaded tensor: the alternative held is its dtype.
using TensorValue = std::variant<xt::xarray<float>, xt::xarray<double>, xt::xarray<std::int64_t>,
                                 xt::xarray<std::uint8_t>>;
using NamedValues = std::vector<std::pair<std::string, TensorValue>>;
using Metadata = std::map<std::string, std::string>;

DType dtype_of(const TensorValue& v);
Shape shape_of(const TensorValue& v);

// A loaded F32 or F64 tensor as xt::xarray<T>; any other dtype throws, naming `what`.
template <class T>
xt::xarray<T> float_array(const TensorValue& v, const std::string& what);

// A tensor to write, borrowed: the array must outlive the save call. Borrowing, not
// copying, because a checkpoint of a large model and its Adam state is hundreds of MB.
struct TensorView {
  std::string name;
  DType dtype;
  Shape shape;
  const void* data;  // contiguous row-major, numel(shape) * dtype_size(dtype) bytes

  template <class S>
  TensorView(std::string name, const xt::xarray<S>& a)
      : name(std::move(name)), dtype(dtype_of<S>()), shape(to_shape(a.shape())), data(a.data()) {}
  TensorView(std::string name, const TensorValue& v);
};

// Tensors in the order given (names must be unique and not "__metadata__").
void save_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                      const Metadata& metadata = {});
void save_safetensors(const std::string& path, const NamedValues& tensors,
                      const Metadata& metadata = {});

struct SafeTensors {
  NamedValues tensors;  // in the header's order
  Metadata metadata;
  const TensorValue* find(const std::string& name) const;  // null if absent
};

SafeTensors load_safetensors(const std::string& path);

// Every way a loaded state differs from what a module or optimizer expects, so that one
// error lists them all instead of the first.
struct StateMismatch {
  std::vector<std::string> missing, unexpected, wrong;  // wrong: "name: found ..., expected ..."
  bool empty() const { return missing.empty() && unexpected.empty() && wrong.empty(); }
  // "<what>: 2 missing (a, b); 1 unexpected (c); 1 wrong (d: found F32 (3, 2), expected (2, 3))"
  void throw_if_any(const std::string& what) const;
};

}  // namespace flowgrad::nn
