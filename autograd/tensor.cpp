// The engine: recording, backward, freeing. Read this file to know how autodiff works here.
#include "autograd/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <sstream>
#include <unordered_set>

#include "autograd/kernels.hpp"
#include "autograd/profile.hpp"

namespace flowgrad {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<std::size_t> g_next_order{0};
std::atomic<std::size_t> g_live_nodes{0};
}  // namespace

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << (s.size() == 1 ? ",)" : ")");
  return os.str();
}

bool grad_enabled() { return g_grad_enabled; }
NoGrad::NoGrad() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGrad::~NoGrad() { g_grad_enabled = previous_; }
std::size_t live_nodes() { return g_live_nodes.load(); }

template <class T>
void add_into(xt::xarray<T>& acc, const xt::xarray<T>& x) {
  if (acc.shape() == x.shape())
    kernels::update(acc, x, [](T a, T b) { return a + b; });
  else
    acc += x;
}

template <class T>
T Tensor<T>::item() const {
  if (size() != 1)
    throw ShapeError("item: tensor of shape " + shape_str(shape()) + " is not a single value");
  return *value().data();
}

template <class T>
void release_unread_value(TensorImpl<T>& t) noexcept {
  if (t.node && t.node->reads_output) return;
  try {
    t.value = xt::xarray<T>(typename xt::xarray<T>::shape_type{0});  // empty
  } catch (...) {  // keeping the value is always correct, just bigger
  }
}

template <class T>
Tensor<T> record(const char* op, xt::xarray<T> value, std::vector<Tensor<T>> inputs,
                 typename Node<T>::Backward backward, OutputUse output) {
  if (profile::enabled()) profile::forward_op(op);
  bool needs = false;
  if (grad_enabled())
    for (const auto& t : inputs) needs = needs || (t.defined() && t.requires_grad());
  Tensor<T> out(std::move(value), needs);
  if (needs) {
    auto node = std::make_shared<Node<T>>();
    ++g_live_nodes;
    node->name = op;
    node->shape = out.shape();
    node->inputs = std::move(inputs);
    node->backward = std::move(backward);
    node->order = g_next_order++;
    node->reads_output = output == OutputUse::Read;
    for (auto& t : node->inputs)
      if (t.defined()) {
        t.edge_ = true;
        ++t.impl_->graph_uses;
      }
    out.impl().node = std::move(node);
  }
  return out;
}

// Dropping the last handle to a long chain would destroy node -> input -> node ...
// recursively. Instead, unlink every node we own alone and destroy them one by one.
template <class T>
Node<T>::~Node() {
  --g_live_nodes;
  std::vector<std::shared_ptr<Node<T>>> pending;
  auto unlink = [&pending](Node<T>& n) {
    n.backward = nullptr;  // drops the closure's handles first, so use_count below is honest
    for (auto& t : n.inputs) {
      const auto& impl = t.impl_ptr();
      if (impl && impl.use_count() == 1 && impl->node) pending.push_back(std::move(impl->node));
    }
    n.inputs.clear();
  };
  unlink(*this);
  while (!pending.empty()) {
    auto n = std::move(pending.back());
    pending.pop_back();
    if (n.use_count() == 1) unlink(*n);
  }  // n dies here with no inputs: no recursion
}

template <class T>
void Tensor<T>::backward(bool retain_graph) const {
  if (size() != 1)
    throw ShapeError("backward: needs a single value, got shape " + shape_str(shape()) +
                     " (reduce it with sum or mean first)");
  if (!requires_grad()) throw std::logic_error("backward: tensor does not require grad");

  // Collect every recorded op reachable from here (iteratively), with its output.
  using Impl = TensorImpl<T>;
  std::vector<std::shared_ptr<Impl>> outputs;
  std::unordered_set<const Node<T>*> seen;
  std::vector<std::shared_ptr<Impl>> stack{impl_ptr()};
  while (!stack.empty()) {
    auto t = std::move(stack.back());
    stack.pop_back();
    const auto& node = t->node;
    if (!node || !seen.insert(node.get()).second) continue;
    if (node->freed)
      throw std::logic_error("backward: the graph through '" + node->name +
                             "' was already freed by an earlier backward; "
                             "pass retain_graph=true to the first one");
    for (const auto& in : node->inputs)
      if (in.defined() && in.requires_grad()) stack.push_back(in.impl_ptr());
    outputs.push_back(std::move(t));
  }
  // Creation order is a topological order: run the latest op first.
  std::sort(outputs.begin(), outputs.end(),
            [](const auto& a, const auto& b) { return a->node->order > b->node->order; });

  // With profiling on, each op's backward is timed together with freeing its gradient.
  const bool profiling = profile::enabled();
  if (profiling) profile::mark("backward: sort graph");
  xt::xarray<T> ones = xt::xarray<T>::from_shape(value().shape());  // d loss / d loss
  std::fill(ones.begin(), ones.end(), T(1));
  accumulate_grad(std::move(ones));
  for (auto& out : outputs) {
    Node<T>& node = *out->node;
    const auto t0 = profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    if (out->has_grad) node.backward(out->grad, out->value);
    out->grad = Array();  // like PyTorch, intermediate results keep no grad
    out->has_grad = false;
    if (profiling)
      profile::backward_op(node.name, std::chrono::duration<double, std::milli>(
                                          std::chrono::steady_clock::now() - t0).count());
    if (!retain_graph) {
      // Done with this op: its closure and edges go now, so values that nothing else
      // needs are freed as backward proceeds. Every op that consumed `out` ran earlier
      // (reverse creation order) and dropped its edge, so freeing never recurses.
      node.freed = true;
      node.backward = nullptr;
      node.inputs.clear();
      out.reset();
    }
  }
  if (profiling) profile::restart_clock();
  outputs.clear();
  if (profiling) profile::mark("backward: free graph");
}

template void add_into(xt::xarray<float>&, const xt::xarray<float>&);
template void add_into(xt::xarray<double>&, const xt::xarray<double>&);
template class Tensor<float>;
template class Tensor<double>;
template struct Node<float>;
template struct Node<double>;
template Tensor<float> record(const char*, xt::xarray<float>, std::vector<Tensor<float>>,
                              Node<float>::Backward, OutputUse);
template Tensor<double> record(const char*, xt::xarray<double>, std::vector<Tensor<double>>,
                               Node<double>::Backward, OutputUse);
template void release_unread_value(TensorImpl<float>&) noexcept;
template void release_unread_value(TensorImpl<double>&) noexcept;

}  // namespace flowgrad
