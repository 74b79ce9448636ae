// Tensor: a cheap handle to a value (xt::xarray), its gradient, and the op that made it.
// The graph is recorded as ops run ("tape"); backward() replays it in reverse.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

namespace flowgrad {

using Shape = std::vector<std::size_t>;

std::string shape_str(const Shape& s);
template <class S>
Shape to_shape(const S& s) { return Shape(s.begin(), s.end()); }

// Errors from ops name the op and the shapes involved.
struct ShapeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

template <class T> class Tensor;

// One recorded op. Its closure receives the gradient and value of the op's output,
// so it never has to hold the output itself (that would be a cycle that leaks the graph).
template <class T>
struct Node {
  using Array = xt::xarray<T>;
  using Backward = std::function<void(const Array& grad_out, const Array& out)>;

  std::string name;                // the op, for error messages
  std::vector<Tensor<T>> inputs;   // edges of the graph
  Backward backward;               // null once the graph has been freed
  std::size_t order = 0;           // creation order: a topological order
  bool freed = false;

  ~Node();  // iterative, so a 10^5-long chain does not overflow the stack
};

template <class T>
struct TensorImpl {
  xt::xarray<T> value;
  xt::xarray<T> grad;              // meaningful only when has_grad
  bool has_grad = false;
  bool requires_grad = false;
  std::shared_ptr<Node<T>> node;   // null for leaves and for results computed under NoGrad
};

template <class T = float>
class Tensor {
 public:
  using value_type = T;
  using Array = xt::xarray<T>;

  Tensor() = default;  // undefined: defined() is false
  explicit Tensor(Array value, bool requires_grad = false)
      : impl_(std::make_shared<TensorImpl<T>>()) {
    impl_->value = std::move(value);
    impl_->requires_grad = requires_grad;
  }

  bool defined() const { return impl_ != nullptr; }
  const Array& value() const { return impl().value; }
  Array& value() { return impl().value; }  // for optimizers and initialisers: not recorded
  Shape shape() const { return to_shape(value().shape()); }
  std::size_t dim() const { return value().dimension(); }
  std::size_t size() const { return value().size(); }
  T item() const;

  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool r = true) { impl().requires_grad = r; return *this; }
  bool is_leaf() const { return impl().node == nullptr; }
  bool has_grad() const { return impl().has_grad; }
  const Array& grad() const { return impl().grad; }
  Array& grad() { return impl().grad; }
  void zero_grad() {
    impl().grad = Array();
    impl().has_grad = false;
  }

  // grad += e, for backward closures. Takes a lazy xtensor expression, so nothing
  // is computed for inputs that do not require grad.
  template <class E>
  void accumulate_grad(E&& e) const {
    auto& self = impl();
    if (!self.requires_grad) return;
    if (!self.has_grad) {
      self.grad = std::forward<E>(e);
      self.has_grad = true;
    } else {
      self.grad += std::forward<E>(e);
    }
  }

  // Reverse mode from this scalar: accumulates d(this)/d(leaf) into every leaf that
  // requires grad. The graph is freed afterwards unless retain_graph.
  void backward(bool retain_graph = false) const;

  // Same value, cut from the graph.
  Tensor detach() const { return Tensor(value(), false); }

  const std::shared_ptr<TensorImpl<T>>& impl_ptr() const { return impl_; }
  TensorImpl<T>& impl() const {
    if (!impl_) throw std::logic_error("flowgrad: use of an undefined Tensor");
    return *impl_;
  }

 private:
  std::shared_ptr<TensorImpl<T>> impl_;
};

// --- recording -------------------------------------------------------------

// Whether ops record onto the tape on this thread.
bool grad_enabled();

// RAII scope in which nothing is recorded (sampling, evaluation).
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool previous_;
};

// Wrap an op's result. If grad is enabled and any input requires grad, the result
// requires grad and remembers its inputs and backward closure; otherwise it is a
// plain constant and the closure is dropped.
template <class T>
Tensor<T> record(const char* op, xt::xarray<T> value, std::vector<Tensor<T>> inputs,
                 typename Node<T>::Backward backward);

// Number of nodes alive in this process (for leak tests).
std::size_t live_nodes();

}  // namespace flowgrad
