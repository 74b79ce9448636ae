// check_flow: the whole check of a flow layer in one call, for your own doctest tests.
//
//   flows::GlowCoupling<double> layer(net);
//   CHECK(flows::check_flow(layer, x));   // x: a float64 batch; prints a report on failure
//
// In float64: x -> y -> x and y -> x -> y give back what they started from; forward's
// logdet equals log|det dy/dx| of the full per-example Jacobian (found by reverse mode, one
// output at a time) and inverse's equals log|det dx/dy|, so each is -the other; gradcheck
// (central differences) of forward and inverse in the input and every parameter.
// The parameters are first perturbed by N(0, perturb^2): a zero-initialised layer (Glow's
// ZeroConv2d) is the identity, which would pass every check whatever its code.
#pragma once

#include <cmath>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "autograd/gradcheck.hpp"
#include "flows/flow.hpp"
#include "nn/module.hpp"

namespace flowgrad::flows {

struct FlowCheckOptions {
  double perturb = 0.05;       // every parameter += N(0, perturb^2) first; 0: as it is
  unsigned seed = 1;           // of that perturbation and of y ~ N(0, 1) for y -> x -> y
  double inverse_tol = 1e-10;  // max |x - inverse(forward(x))|, and the same for y
  double logdet_tol = 1e-6;    // max |logdet - log|det J||, per example
  bool gradients = true;       // also gradcheck forward and inverse
  GradcheckOptions grad;       // PyTorch's gradcheck tolerances by default
};

struct FlowCheckResult {
  bool ok = true;
  double inverse_error = 0;         // x -> y -> x
  double latent_inverse_error = 0;  // y -> x -> y
  double logdet_error = 0;          // forward's logdet against its Jacobian
  double inverse_logdet_error = 0;  // inverse's logdet against its Jacobian
  double logdet_sum_error = 0;      // |forward logdet + inverse logdet|
  GradcheckResult forward_grad, inverse_grad;
  std::string report;               // one line per check, failures marked
  explicit operator bool() const { return ok; }
};

inline std::ostream& operator<<(std::ostream& os, const FlowCheckResult& r) { return os << r.report; }

FlowCheckResult check_flow(Flow<double>& flow, const xt::xarray<double>& x, FlowCheckOptions options = {});

// Every parameter += scale * N(0, 1), drawn from `seed`: what check_flow does first, for
// tests of your own (a zero-initialised layer would pass them whatever its code).
template <class T>
void perturb_parameters(nn::Module<T>& module, double scale, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  for (auto& [name, p] : module.named_parameters())
    for (auto& v : p.value()) v += T(scale * normal(rng));
}

// Worst |a - b| over the elements; infinite when the sizes differ or a NaN is met.
template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  auto ib = b.begin();
  for (auto ia = a.begin(); ia != a.end(); ++ia, ++ib) {
    const double d = std::abs(double(*ia) - double(*ib));
    if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
  }
  return worst;
}

// J[b](i, j) = d f(x)[b, i] / d x[b, j] for a function acting on each example separately.
std::vector<xt::xarray<double>> per_example_jacobians(const std::function<Tensor<double>(const Tensor<double>&)>& f,
                                                     const xt::xarray<double>& x);
// Worst |log|det J_b| - logdet_b| over the batch.
double logdet_error(const std::function<Tensor<double>(const Tensor<double>&)>& f, const xt::xarray<double>& x,
                    const xt::xarray<double>& logdet);

}  // namespace flowgrad::flows
