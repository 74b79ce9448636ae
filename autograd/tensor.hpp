// Tensor: a cheap handle to a value (xt::xarray), its gradient, and the op that made it.
// The graph is recorded as ops run ("tape"); backward() replays it in reverse.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
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

// The type of a scalar argument of an op on Tensor<T>: T, but not used to deduce T, so any
// arithmetic value converts to it as in PyTorch (0.5 * loss and pow(x, 2) on Tensor<float>).
template <class T>
using ScalarArg = typename std::enable_if<std::is_arithmetic<T>::value, T>::type;

// acc += x: a plain loop when the shapes match, xtensor's broadcasting otherwise.
template <class T>
void add_into(xt::xarray<T>& acc, const xt::xarray<T>& x);

// What an op's backward closure reads of the op's own output (its `out` argument). Unread
// lets the engine free the output's value as soon as no handle but the graph's holds it
// (see Tensor::drop); when unsure, Read (the default) is always correct.
enum class OutputUse { Read, Unread };

// One recorded op. Its closure receives the gradient and value of the op's output,
// so it never has to hold the output itself (that would be a cycle that leaks the graph).
// grad_out belongs to the engine, which drops it right after the call: a closure may
// std::move it into an input's gradient when that gradient equals it (add, reshape).
template <class T>
struct Node {
  using Array = xt::xarray<T>;
  using Backward = std::function<void(Array& grad_out, const Array& out)>;

  std::string name;                // the op, for error messages
  Shape shape;                     // of the output (whose value may be freed early)
  std::vector<Tensor<T>> inputs;   // edges of the graph
  Backward backward;               // null once the graph has been freed
  std::size_t order = 0;           // creation order: a topological order
  bool freed = false;
  bool reads_output = true;        // false: backward ignores `out`, so it may be freed early

  ~Node();  // iterative, so a 10^5-long chain does not overflow the stack
};

template <class T>
struct TensorImpl {
  xt::xarray<T> value;
  xt::xarray<T> grad;              // meaningful only when has_grad
  bool has_grad = false;
  bool requires_grad = false;
  std::shared_ptr<Node<T>> node;   // null for leaves and for results computed under NoGrad
  std::size_t graph_uses = 0;      // handles to this held in Node::inputs (see Tensor::drop)
};

// Frees t.value unless its own op's backward reads it (Tensor::drop calls this once
// no handle is left but the graph's edges).
template <class T>
void release_unread_value(TensorImpl<T>& t) noexcept;

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
  // Handles are shared_ptrs that also tell apart the graph's own (see drop()).
  Tensor(const Tensor& o) : impl_(o.impl_) {}
  Tensor(Tensor&& o) noexcept : impl_(std::move(o.impl_)), edge_(o.edge_) { o.edge_ = false; }
  Tensor& operator=(const Tensor& o) {
    Tensor copy(o);
    return *this = std::move(copy);
  }
  Tensor& operator=(Tensor&& o) noexcept {
    if (this != &o) {
      drop();
      impl_ = std::move(o.impl_);
      edge_ = o.edge_;
      o.edge_ = false;
    }
    return *this;
  }
  ~Tensor() { drop(); }

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
  // is computed for inputs that do not require grad; a fresh array (an rvalue) becomes
  // the gradient without a copy.
  template <class E>
  void accumulate_grad(E&& e) const { accumulate(impl(), std::forward<E>(e)); }
  template <class E>
  static void accumulate(TensorImpl<T>& self, E&& e) {
    if (!self.requires_grad) return;
    if (!self.has_grad) {
      self.grad = std::forward<E>(e);
      self.has_grad = true;
    } else if constexpr (std::is_same_v<std::decay_t<E>, Array>) {
      add_into(self.grad, e);
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
  template <class U>
  friend Tensor<U> record(const char*, xt::xarray<U>, std::vector<Tensor<U>>,
                          typename Node<U>::Backward, OutputUse);

  // Values die early, as in PyTorch: a value that only the graph's edges still point at,
  // and that no backward reads, is freed when its last other handle goes. Ops whose
  // backward reads an input's value keep a Tensor of it in their closure (a handle);
  // the others keep a GradSink, and say with reads_output whether they read their own
  // output. So a ReLU's input or a residual sum is freed during forward, not at the end
  // of backward.
  void drop() noexcept {
    if (!impl_) return;
    if (edge_)
      --impl_->graph_uses;
    else if (impl_->graph_uses > 0 && impl_.use_count() == long(impl_->graph_uses) + 1)
      release_unread_value(*impl_);
    impl_.reset();
    edge_ = false;
  }

  std::shared_ptr<TensorImpl<T>> impl_;
  bool edge_ = false;  // this handle is one of a Node's inputs
};

// What a backward closure needs to hand an input its gradient, without keeping the
// input's value alive as a Tensor handle would. The input itself stays alive through
// the Node's edges until backward has passed it.
template <class T>
class GradSink {
 public:
  GradSink() = default;
  explicit GradSink(const Tensor<T>& t) : impl_(t.impl_ptr()) {}
  bool requires_grad() const {
    const auto p = impl_.lock();
    return p && p->requires_grad;
  }
  template <class E>
  void accumulate_grad(E&& e) const {
    if (const auto p = impl_.lock()) Tensor<T>::accumulate(*p, std::forward<E>(e));
  }

 private:
  std::weak_ptr<TensorImpl<T>> impl_;
};
template <class T>
GradSink<T> sink(const Tensor<T>& t) { return GradSink<T>(t); }

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
// plain constant and the closure is dropped. OutputUse::Unread promises that the closure
// never reads its `out` argument (so the output may be freed early).
template <class T>
Tensor<T> record(const char* op, xt::xarray<T> value, std::vector<Tensor<T>> inputs,
                 typename Node<T>::Backward backward, OutputUse output = OutputUse::Read);

// Number of nodes alive in this process (for leak tests).
std::size_t live_nodes();

}  // namespace flowgrad
