#include "flows/export_check.hpp"

#include "autograd/random.hpp"
#include "autograd/reduce.hpp"
#include "flows/models.hpp"
#include "nn/safetensors.hpp"

namespace flowgrad::flows {

ExportCheckSummary export_check(const std::string& model_name, const std::string& path,
                                std::uint64_t seed, std::size_t batch) {
  manual_seed(seed);
  auto model = make_bench_model<double>(model_name);
  model->set_actnorm_data_init(false);
  for (auto& [name, p] : model->named_parameters()) p.value() += normal<double>(p.shape(), 0.0, 0.01);

  Shape shape{batch};
  for (auto s : model->input_shape()) shape.push_back(s);
  const xt::xarray<double> x = uniform<double>(shape, 0.0, 1.0);
  auto logp = model->log_prob(Tensor<double>(x));
  mean(-logp).backward();

  ExportCheckSummary summary;
  summary.model = model_name;
  summary.parameters = model->parameter_count();
  summary.logp.assign(logp.value().begin(), logp.value().end());

  std::vector<nn::TensorView> views;
  std::vector<xt::xarray<double>> zero_grads;  // for parameters the loss does not reach
  const auto params = model->named_parameters();
  zero_grads.reserve(params.size());
  for (auto& [name, t] : model->state()) {
    if (auto ref = model->reference_name(name)) views.emplace_back(*ref, t.value());
  }
  views.emplace_back("__input__", x);
  views.emplace_back("__logp__", logp.value());
  for (auto& [name, p] : params) {
    auto ref = model->reference_name(name);
    if (!ref) continue;
    if (p.has_grad()) {
      views.emplace_back("grad." + *ref, p.grad());
    } else {
      zero_grads.push_back(xt::zeros<double>(p.shape()));
      views.emplace_back("grad." + *ref, zero_grads.back());
    }
  }
  nn::save_safetensors(path, views, {{"model", model_name}, {"producer", "flowgrad export-check"}});
  summary.tensors = views.size();
  return summary;
}

}  // namespace flowgrad::flows
