#include "apps/run.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <xtensor/xview.hpp>

#include "autograd/random.hpp"
#include "autograd/shape.hpp"
#include "datasets/batching.hpp"
#include "datasets/png.hpp"
#include "flows/bits_per_dim.hpp"
#include "nn/checkpoint.hpp"

namespace flowgrad::app {

namespace fs = std::filesystem;

std::string resolve_checkpoint(const std::string& run_or_file) {
  std::error_code ec;
  if (fs::is_directory(run_or_file, ec)) {
    const std::string path = (fs::path(run_or_file) / kCheckpointName).string();
    if (!fs::is_regular_file(path, ec))
      throw std::runtime_error(path + ": no checkpoint in the run directory " + run_or_file + " (expected the " +
                               kCheckpointName + " that `flowgrad train` writes; a run stopped before its first " +
                               "checkpoint starts again with train --out " + run_or_file + " and its options)");
    return path;
  }
  if (!fs::exists(run_or_file, ec))
    throw std::runtime_error(run_or_file + ": no such run directory or checkpoint file");
  return run_or_file;
}

RunConfig read_run_config(const nn::Metadata& metadata, const std::string& path) {
  auto format = metadata.find("format");
  auto config = metadata.find("config");
  if (format == metadata.end() || format->second != kCheckpointFormat || config == metadata.end())
    throw std::runtime_error(path + ": not a flowgrad training checkpoint (expected metadata format '" +
                             kCheckpointFormat + "' and a 'config'; found " +
                             (format == metadata.end() ? std::string("no format") : "format '" + format->second + "'") +
                             ")");
  RunConfig c = run_config_from_json(config->second, path);
  try {
    validate_model(c.model);
    validate_train(c.train);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": the run configuration in its metadata is not valid: " + e.what());
  }
  return c;
}

std::runtime_error metadata_error(const std::string& path, const std::string& key, const std::string& why) {
  return std::runtime_error(path + ": metadata '" + key + "' " + why);
}

std::string meta_text(const nn::Metadata& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  if (it == m.end()) throw metadata_error(path, key, "is missing");
  return it->second;
}

LoadedModel load_model_for_inference(const std::string& run_or_file) {
  LoadedModel out;
  out.path = resolve_checkpoint(run_or_file);
  nn::SafeTensors file = nn::load_safetensors(out.path);
  out.config = read_run_config(file.metadata, out.path);
  out.model = build_model(out.config.model);
  const std::string what = out.path + " (a " + describe(out.config.model) + " according to its metadata)";
  // The optimizer's and the average's tensors share the file; the model's carry its names.
  nn::NamedValues ema_part;
  for (auto& [name, v] : file.tensors)
    if (name.rfind(nn::ExponentialMovingAverage<float>::kPrefix, 0) == 0) ema_part.emplace_back(name, v);
  nn::load_module_state(*out.model, nn::module_part(*out.model, std::move(file.tensors)), what);
  if (out.config.train.ema > 0 && !ema_part.empty()) {
    // Inference uses the averaged weights, as the run's own evaluations did.
    nn::ExponentialMovingAverage<float> ema(out.model->named_parameters(), out.config.train.ema);
    ema.load_state(ema_part, what);
    ema.swap();
    out.averaged = true;
  }
  out.model->eval();
  out.step = meta_number_or<std::int64_t>(file.metadata, "step", out.path, 0);
  return out;
}

void check_image_shape(const ModelConfig& m, const data::ImageDataset& d) {
  if (d.channels() != m.channels || d.height() != m.height || d.width() != m.width)
    throw UsageError("the model expects " + std::to_string(m.channels) + "x" + std::to_string(m.height) + "x" +
                     std::to_string(m.width) + " images, but " + d.source + " has " +
                     std::to_string(d.channels()) + "x" + std::to_string(d.height()) + "x" +
                     std::to_string(d.width()));
}

void to_model_shape(xt::xarray<float>& images, const flows::FlowModel<float>& model) {
  Shape s{images.shape()[0]};
  for (auto d : model.input_shape()) s.push_back(d);
  images.reshape(s);
}

void to_image_shape(xt::xarray<float>& values, const ModelConfig& m) {
  values.reshape({values.shape()[0], m.channels, m.height, m.width});
}

double test_bits_per_dim(flows::FlowModel<float>& model, const data::ImageDataset& test, std::size_t batch_size,
                         std::size_t max_batches, nn::Communicator& group) {
  return test_scores(model, test, batch_size, max_batches, group).bpd;
}

namespace {

// log p(x | y = k) for every class, (n, K); (n, 1) of log p(x) for an unconditional model.
xt::xarray<double> log_prob_rows(flows::FlowModel<float>& model, const Tensor<float>& x) {
  const std::size_t n = x.shape().at(0);
  if (model.classes()) return xt::cast<double>(model.log_prob_each_class(x).value());
  xt::xarray<double> lp = xt::cast<double>(model.log_prob(x).value());
  lp.reshape({n, std::size_t(1)});
  return lp;
}

// The same rows of images [first, first + n) of the test set: with uniform noise, the
// fixed noise of the test split; with a variational dequantizer, the bound
// log mean_s exp(log p(x_s) - log q(u_s | pixels)) over `samples` draws u_s ~ q, whose
// noise is a function of the image index alone (as the uniform test noise is).
xt::xarray<double> test_log_probs(flows::FlowModel<float>& model, const data::TestBatches& batches,
                                  const data::ImageDataset& test, std::size_t i, std::size_t samples) {
  auto* dequantizer = model.dequantizer();
  if (!dequantizer) {
    xt::xarray<float> x = batches.batch<float>(i);
    to_model_shape(x, model);
    return log_prob_rows(model, Tensor<float>(std::move(x)));
  }
  const std::size_t first = batches.first(i), n = batches.count(i), per_image = test.images.size() / test.size();
  const xt::xarray<float> pixels = xt::cast<float>(xt::view(test.images, xt::range(first, first + n)));
  std::vector<xt::xarray<float>> noise(samples, xt::xarray<float>::from_shape(pixels.shape()));
  for (std::size_t j = 0; j < n; ++j) {
    Generator g(data::kTestNoiseSeed ^ (0x9e3779b97f4a7c15ULL * (first + j + 1)));
    for (auto& eps : noise) {
      const xt::xarray<float> drawn = normal<float>({per_image}, 0.f, 1.f, g);
      std::copy(drawn.begin(), drawn.end(), eps.data() + j * per_image);
    }
  }
  std::vector<xt::xarray<double>> each;
  for (const auto& eps : noise) {
    const flows::Dequantized<float> d = dequantizer->forward(pixels, eps);
    Shape shape{n};
    for (auto s : model.input_shape()) shape.push_back(s);
    xt::xarray<double> log_q = xt::cast<double>(d.log_q.value());
    log_q.reshape({n, std::size_t(1)});
    each.push_back(log_prob_rows(model, reshape(d.x, shape)) - log_q);
  }
  xt::xarray<double> top = each.front();  // log mean exp over the samples, from the largest
  for (const auto& w : each) top = xt::maximum(top, w);
  xt::xarray<double> total = xt::zeros_like(top);
  for (const auto& w : each) total += xt::exp(w - top);
  return top + xt::log(total / double(samples));
}

}  // namespace

TestScores test_scores(flows::FlowModel<float>& model, const data::ImageDataset& test, std::size_t batch_size,
                       std::size_t max_batches, nn::Communicator& group, std::size_t samples) {
  if (samples == 0) throw std::invalid_argument("test_scores: samples must be positive");
  const bool was_training = model.is_training();
  model.eval();
  NoGrad no_grad;
  data::TestBatches batches(test, batch_size);
  const std::size_t classes = model.classes();
  const double log_prior = classes ? -std::log(double(classes)) : 0;  // uniform p(y)
  double sums[4] = {0, 0, 0, 0};  // bits/dim (true class), marginal bits/dim, correct, images
  auto bpd = [&](double log_p) { return flows::bits_per_dim(log_p, model.dims()); };
  for (std::size_t i = std::size_t(group.rank()); i < std::min(batches.size(), max_batches); i += std::size_t(group.size())) {
    const std::size_t first = batches.first(i), n = batches.count(i);
    const xt::xarray<double> each = test_log_probs(model, batches, test, i, samples);  // (n, K or 1)
    sums[3] += double(n);
    for (std::size_t j = 0; j < n; ++j) {
      const double* row = each.data() + j * each.shape()[1];
      if (!classes) {
        sums[0] += bpd(row[0]);
        continue;
      }
      if (test.labels[first + j] >= classes)
        throw data::DataError(test.source + ": the label of image " + std::to_string(first + j) + " is " +
                              std::to_string(test.labels[first + j]) + ", not one of the model's " +
                              std::to_string(classes) + " classes");
      const std::size_t best = std::size_t(std::max_element(row, row + classes) - row);
      double total = 0;  // logsumexp over the classes, from the largest
      for (std::size_t k = 0; k < classes; ++k) total += std::exp(row[k] - row[best]);
      sums[0] += bpd(row[test.labels[first + j]]);
      sums[1] += bpd(row[best] + std::log(total) + log_prior);
      sums[2] += best == test.labels[first + j] ? 1 : 0;
    }
  }
  group.allreduce_sum(sums, 4);
  model.train(was_training);
  TestScores scores;
  scores.bpd = sums[0] / sums[3];
  if (classes) scores.marginal_bpd = sums[1] / sums[3], scores.accuracy = sums[2] / sums[3];
  return scores;
}

std::vector<std::uint8_t> rows_of_classes(std::size_t classes, std::size_t per_class) {
  std::vector<std::uint8_t> out;
  for (std::size_t k = 0; k < classes; ++k) out.insert(out.end(), per_class, std::uint8_t(k));
  return out;
}

std::size_t write_samples(flows::FlowModel<float>& model, const ModelConfig& m, const std::string& path,
                          std::size_t n, double temperature, std::uint64_t seed,
                          const std::vector<std::uint8_t>& classes, std::size_t columns) {
  const std::string saved = generator_state();
  const bool was_training = model.is_training();
  model.eval();
  xt::xarray<float> x;
  try {
    manual_seed(seed);
    const Tensor<float> context = model.classes() ? flows::one_hot<float>(classes, model.classes()) : Tensor<float>();
    flows::Samples<float> drawn = model.sample_checked(n, float(temperature), context);
    x = drawn.x.value();
    const std::size_t per = x.size() / n;
    for (std::size_t i = 0; i < n; ++i)  // drawn as grey tiles
      if (!drawn.finite[i]) std::fill(x.data() + i * per, x.data() + (i + 1) * per, NAN);
  } catch (...) {
    set_generator_state(saved);
    model.train(was_training);
    throw;
  }
  set_generator_state(saved);
  model.train(was_training);
  to_image_shape(x, m);
  if (!columns) columns = std::max<std::size_t>(1, std::size_t(std::ceil(std::sqrt(double(n)))));
  return data::write_image_grid<float>(path, x, columns);
}

std::string with_commas(std::size_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace flowgrad::app
