#include "flows/check.hpp"

#include <cmath>
#include <random>
#include <sstream>

#include "flows/linalg.hpp"

namespace flowgrad::flows {
std::vector<xt::xarray<double>> per_example_jacobians(const std::function<Tensor<double>(const Tensor<double>&)>& f,
                                                     const xt::xarray<double>& x0) {
  Tensor<double> x(x0, true);
  Tensor<double> y = f(x);
  const std::size_t batch = x0.shape()[0], din = x0.size() / batch, dout = y.size() / batch;
  std::vector<xt::xarray<double>> jacobian(batch, xt::xarray<double>(xt::zeros<double>({dout, din})));
  for (std::size_t i = 0; i < dout; ++i) {  // one backward per output row, all examples at once
    xt::xarray<double> pick = xt::zeros<double>(y.shape());
    for (std::size_t b = 0; b < batch; ++b) pick.data()[b * dout + i] = 1.0;
    x.zero_grad();
    sum(mul(y, pick)).backward(true);
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t j = 0; j < din; ++j) jacobian[b](i, j) = x.has_grad() ? x.grad().data()[b * din + j] : 0.0;
  }
  return jacobian;
}

double logdet_error(const std::function<Tensor<double>(const Tensor<double>&)>& f, const xt::xarray<double>& x,
                    const xt::xarray<double>& logdet) {
  const auto jacobian = per_example_jacobians(f, x);
  double worst = 0;
  for (std::size_t b = 0; b < jacobian.size(); ++b) {
    const double d = std::abs(slogdet(jacobian[b]).logabs - logdet(b));
    if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
  }
  return worst;
}

FlowCheckResult check_flow(Flow<double>& flow, const xt::xarray<double>& x, FlowCheckOptions o) {
  FlowCheckResult r;
  std::ostringstream report;
  auto line = [&](const std::string& what, double error, double tol) {
    const bool ok = error <= tol;
    r.ok = r.ok && ok;
    report << (ok ? "  ok    " : "  FAIL  ") << what << ": " << error << " (allowed " << tol << ")\n";
  };
  if (o.perturb > 0) perturb_parameters(flow, o.perturb, o.seed);
  std::mt19937_64 rng(o.seed + 1);  // for y ~ N(0, 1)
  const std::size_t batch = x.dimension() ? x.shape()[0] : 0;

  const auto fw = flow.forward(Tensor<double>(x));
  const xt::xarray<double> y = fw.y.value();
  const auto back = flow.inverse(fw.y);
  if (fw.logdet.shape() != Shape{batch} || back.logdet.shape() != Shape{batch}) {
    r.ok = false;
    r.report = "  FAIL  logdet shapes " + shape_str(fw.logdet.shape()) + " (forward), " +
               shape_str(back.logdet.shape()) + " (inverse); expected (" + std::to_string(batch) + ",)\n";
    return r;
  }
  r.inverse_error = max_abs_diff(back.y.value(), x);
  line("x -> y -> x, max |difference|", r.inverse_error, o.inverse_tol);
  std::normal_distribution<double> normal;
  xt::xarray<double> y_drawn = xt::xarray<double>::from_shape(y.shape());
  for (auto& v : y_drawn) v = normal(rng);
  const auto x_of_y = flow.inverse(Tensor<double>(y_drawn));
  r.latent_inverse_error = max_abs_diff(flow.forward(x_of_y.y).y.value(), y_drawn);
  line("y -> x -> y (y ~ N(0, 1)), max |difference|", r.latent_inverse_error, o.inverse_tol);
  r.logdet_sum_error = max_abs_diff(back.logdet.value(), -fw.logdet.value());
  line("forward logdet + inverse logdet", r.logdet_sum_error, o.inverse_tol);
  r.logdet_error = logdet_error([&](const Tensor<double>& t) { return flow.forward(t).y; }, x, fw.logdet.value());
  line("forward logdet - log|det dy/dx|", r.logdet_error, o.logdet_tol);
  r.inverse_logdet_error =
      logdet_error([&](const Tensor<double>& t) { return flow.inverse(t).y; }, y, back.logdet.value());
  line("inverse logdet - log|det dx/dy|", r.inverse_logdet_error, o.logdet_tol);

  if (o.gradients) {
    using In = std::vector<Tensor<double>>;
    const auto params = flow.named_parameters();
    r.forward_grad = gradcheck([&](const In& in) { return flow.forward(in[0]); }, {Tensor<double>(x)}, params, o.grad);
    r.inverse_grad = gradcheck([&](const In& in) { return flow.inverse(in[0]); }, {Tensor<double>(y)}, params, o.grad);
    for (const auto* g : {&r.forward_grad, &r.inverse_grad}) {
      r.ok = r.ok && g->ok;
      report << (g->ok ? "  ok    " : "  FAIL  ") << (g == &r.forward_grad ? "gradcheck of forward" : "gradcheck of inverse")
             << " in the input and " << params.size() << " parameters: " << *g << "\n";
    }
  }
  r.report = std::string(r.ok ? "check_flow passed\n" : "check_flow FAILED\n") + report.str();
  return r;
}

}  // namespace flowgrad::flows
