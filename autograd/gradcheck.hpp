// gradcheck: compare reverse-mode gradients with central differences, in float64.
//
//   CHECK(flowgrad::gradcheck([](const auto& in) { return tanh(in[0] * in[1]); }, {x, y}));
//
// The function's outputs are projected on random weights (not all ones, which would hide
// errors that cancel), and d(projection)/d(every input and parameter) is compared
// element by element with (f(v+eps) - f(v-eps)) / 2eps. Tolerances default to
// PyTorch's gradcheck: |analytic - numeric| <= atol + rtol * |numeric|.
#pragma once

#include <cmath>
#include <ostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/elementwise.hpp"
#include "autograd/reduce.hpp"
#include "autograd/tensor.hpp"

namespace flowgrad {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  unsigned seed = 1234;
};

struct GradcheckResult {
  bool ok = true;
  std::string worst;  // which tensor, which index, both values
  std::size_t checked = 0;
  explicit operator bool() const { return ok; }
};

inline std::ostream& operator<<(std::ostream& os, const GradcheckResult& r) {
  return os << (r.ok ? "gradcheck passed" : "gradcheck FAILED") << " (" << r.checked
            << " elements; worst: " << r.worst << ")";
}

using NamedTensors = std::vector<std::pair<std::string, Tensor<double>>>;

namespace detail {
inline std::vector<Tensor<double>> as_outputs(const Tensor<double>& t) { return {t}; }
inline std::vector<Tensor<double>> as_outputs(std::vector<Tensor<double>> v) { return v; }
template <class A, class B>
std::vector<Tensor<double>> as_outputs(const std::pair<A, B>& p) {
  return {p.first, p.second};
}

inline std::string index_str(const Shape& shape, std::size_t flat) {
  std::vector<std::size_t> idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::ostringstream os;
  os << "[";
  for (std::size_t d = 0; d < idx.size(); ++d) os << (d ? "," : "") << idx[d];
  os << "]";
  return os.str();
}
}  // namespace detail

// f(inputs) returns a Tensor<double>, a vector or a pair of them, or anything that converts
// to a vector (a flow's FlowResult {y, logdet}). `params` are further leaves f uses (a
// module's named_parameters()); they are checked too. Inputs and params must be leaves:
// gradcheck perturbs their values, which an op's output would not pass on.
template <class F>
GradcheckResult gradcheck(F&& f, std::vector<Tensor<double>> inputs, NamedTensors params = {},
                          GradcheckOptions opt = {}) {
  NamedTensors checked;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    checked.emplace_back("input " + std::to_string(i), inputs[i]);
  for (auto& p : params) checked.push_back(p);
  for (auto& [name, t] : checked) {
    if (!t.defined()) throw std::invalid_argument("gradcheck: " + name + " is an undefined Tensor");
    if (!t.is_leaf())
      throw std::invalid_argument("gradcheck: " + name + " is the output of the op '" + t.impl().node->name +
                                  "', not a leaf; pass Tensor<double>(t.value()) and do the op inside f");
  }
  for (auto& [name, t] : checked) {
    t.set_requires_grad(true);
    t.zero_grad();
  }

  // Random projection weights, one array per output.
  std::mt19937_64 rng(opt.seed);
  std::normal_distribution<double> normal;
  std::vector<xt::xarray<double>> weights;
  auto project = [&](const auto& outs) {
    double total = 0;
    for (std::size_t o = 0; o < outs.size(); ++o) {
      const auto& v = outs[o].value();
      for (std::size_t i = 0; i < v.size(); ++i) total += v.data()[i] * weights[o].data()[i];
    }
    return total;
  };

  // Analytic: one backward of the projection.
  {
    auto outs = detail::as_outputs(f(inputs));
    for (const auto& o : outs) {
      xt::xarray<double> w = xt::xarray<double>::from_shape(o.value().shape());
      for (auto& e : w) e = normal(rng);
      weights.push_back(std::move(w));
    }
    Tensor<double> loss;
    for (std::size_t o = 0; o < outs.size(); ++o) {
      if (!outs[o].requires_grad()) continue;
      Tensor<double> term = sum(mul(outs[o], weights[o]));
      loss = loss.defined() ? loss + term : term;
    }
    if (loss.defined()) loss.backward();
  }

  GradcheckResult result;
  double worst_ratio = -1;
  NoGrad no_grad;
  for (auto& [name, t] : checked) {
    xt::xarray<double> analytic =
        t.has_grad() ? t.grad() : xt::xarray<double>(xt::zeros<double>(t.value().shape()));
    for (std::size_t i = 0; i < t.size(); ++i) {
      double& v = t.value().data()[i];
      const double saved = v;
      v = saved + opt.eps;
      const double up = project(detail::as_outputs(f(inputs)));
      v = saved - opt.eps;
      const double down = project(detail::as_outputs(f(inputs)));
      v = saved;
      const double numeric = (up - down) / (2 * opt.eps);
      const double a = analytic.data()[i];
      const double allowed = opt.atol + opt.rtol * std::abs(numeric);
      const double ratio = std::isfinite(a) ? std::abs(a - numeric) / allowed : INFINITY;
      ++result.checked;
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        std::ostringstream os;
        os << name << " " << detail::index_str(t.shape(), i) << ": analytic " << a << ", numeric "
           << numeric << ", |diff| " << std::abs(a - numeric) << " vs allowed " << allowed;
        result.worst = os.str();
      }
      if (!(ratio <= 1)) result.ok = false;
    }
  }
  for (auto& [name, t] : checked) t.zero_grad();
  return result;
}

}  // namespace flowgrad
