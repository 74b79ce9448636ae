// Class-conditional Glow (openai/glow's ycond): the top prior's mean and log-scale shifted
// by a zero-initialised linear map of the one-hot class, per channel or per position, and
// optionally the split priors' too. The flow is the unconditional one; what is new is a
// normalised density p(x | y) per class, its gradients, sampling per class, and the
// generative classifier argmax_y log p(x | y) + log p(y). Every check runs on each variant.
#include <doctest/doctest.h>

#include "autograd/gradcheck.hpp"
#include "autograd/shape.hpp"
#include "flow_checks.hpp"
#include "flows/class_shift.hpp"
#include "flows/glow.hpp"
#include "nn/optim.hpp"

using namespace flowgrad;
using namespace flow_checks;

namespace {

struct Variant {
  const char* name;
  bool per_position, splits;
};
const Variant kVariants[] = {{"per channel (ycond)", false, false},
                             {"per position", true, false},
                             {"per channel, split priors too", false, true},
                             {"per position, split priors too", true, true}};

flows::GlowConfig tiny(std::size_t classes, std::size_t size = 4, Variant v = kVariants[0]) {
  flows::GlowConfig c;
  c.height = c.width = size, c.levels = size == 2 ? 1 : 2, c.steps = 1, c.hidden = 4;
  c.learn_top = true, c.classes = classes;
  c.class_per_position = v.per_position, c.class_splits = v.splits;
  return c;
}

std::vector<std::uint8_t> labels_of(std::initializer_list<int> ks) {
  return std::vector<std::uint8_t>(ks.begin(), ks.end());
}

// log p(y | x) with p(y) uniform, from log p(x | y) per class: (B, K).
xt::xarray<double> log_posterior(const xt::xarray<double>& each) {
  xt::xarray<double> out = each;
  for (std::size_t i = 0; i < each.shape()[0]; ++i) {
    double top = -INFINITY, total = 0;
    for (std::size_t k = 0; k < each.shape()[1]; ++k) top = std::max(top, each(i, k));
    for (std::size_t k = 0; k < each.shape()[1]; ++k) total += std::exp(each(i, k) - top);
    for (std::size_t k = 0; k < each.shape()[1]; ++k) out(i, k) = each(i, k) - top - std::log(total);
  }
  return out;
}

}  // namespace

TEST_CASE("conditional Glow starts as the unconditional one, for every class") {
  for (const Variant& v : kVariants) {
    const std::string variant = v.name;
    CAPTURE(variant);
    manual_seed(700);
    flows::Glow<double> plain(tiny(0, 8));
    manual_seed(700);
    flows::Glow<double> conditional(tiny(3, 8, v));
    CHECK(conditional.classes() == 3);
    // Weight and bias of the top's class map, and of the split's when conditioned too.
    const std::size_t maps = v.splits ? 2 : 1;
    CHECK(conditional.named_parameters().size() == plain.named_parameters().size() + 2 * maps);
    // Mean and log-scale per channel, or per channel and position.
    const std::size_t top_rows = 2 * 8 * (v.per_position ? 2 * 2 : 1);  // the 8x2x2 top
    const std::size_t split_rows = 2 * 2 * (v.per_position ? 16 : 1);   // the split's 2x4x4 z
    CHECK(conditional.class_map->weight.shape() == Shape{top_rows, 3});
    if (v.splits)
      CHECK(conditional.class_maps->named_parameters().at(0).second.shape() == Shape{split_rows, 3});
    conditional.set_actnorm_data_init(false), plain.set_actnorm_data_init(false);
    const Tensor<double> x(rand_uniform({3, 1, 8, 8}, 701, 0.02, 0.98));
    const auto want = plain.log_prob(x).value();
    for (int k = 0; k < 3; ++k) {
      CAPTURE(k);
      const auto got = conditional.log_prob(x, flows::one_hot<double>(labels_of({k, k, k}), 3)).value();
      CHECK(max_abs_diff(got, want) == 0.0);
    }
  }
}

TEST_CASE("class_shift: per channel broadcasts over positions, per position is a shift image; bad shapes are refused") {
  manual_seed(705);
  auto channel = flows::make_class_map<double>(2, 6, 3, 5, false), position = flows::make_class_map<double>(2, 6, 3, 5, true);
  CHECK(channel->weight.shape() == Shape{6, 2});
  CHECK(position->weight.shape() == Shape{90, 2});
  CHECK(xt::all(xt::equal(position->weight.value(), 0.0)));  // the unconditional prior at the start
  const Tensor<double> context = flows::one_hot<double>(labels_of({1, 0, 1}), 2);
  CHECK(flows::class_shift(*channel, context, {3, 6, 3, 5}).shape() == Shape{3, 6, 1, 1});
  position->weight.value() = rand_uniform({90, 2}, 706, -1, 1);
  const auto shift = flows::class_shift(*position, context, {3, 6, 3, 5}).value();
  REQUIRE(shift.shape() == std::vector<std::size_t>{3, 6, 3, 5});
  // Row-major: position (c, i, j) of example n is the map's output c * 15 + i * 5 + j of its class.
  CHECK(shift(0, 4, 2, 3) == position->weight.value()(4 * 15 + 2 * 5 + 3, 1));
  CHECK(shift(1, 5, 0, 1) == position->weight.value()(5 * 15 + 0 * 5 + 1, 0));
  CHECK_THROWS_AS(flows::class_shift(*position, context, {3, 6, 3, 4}), ShapeError);
  CHECK_THROWS_AS(flows::class_shift(*position, context, {2, 6, 3, 5}), ShapeError);
  CHECK_THROWS_AS(flows::Glow<double>(tiny(0, 4, kVariants[3])), std::invalid_argument);  // no classes
}

namespace {
void check_conditional(const Variant& v) {
  manual_seed(710);
  flows::Glow<double> model(tiny(3, 8, v));
  model.set_actnorm_data_init(false);
  perturb_parameters(model, 0.3, 711);  // the class maps too: the classes differ
  const Arr x = rand_uniform({4, 1, 8, 8}, 712, 0.02, 0.98);
  auto lat = model.forward(Tensor<double>(x));
  CHECK(max_abs_diff(model.inverse(lat.zs).y.value(), x) < 1e-10);
  CHECK(logdet_error([&](const Tensor<double>& t) {
          std::vector<Tensor<double>> parts;
          for (auto& z : model.forward(t).zs) parts.push_back(flatten(z, 1));
          return concat(parts, 1);
        }, x, lat.logdet.value()) < 1e-6);

  const auto labels = labels_of({0, 2, 1, 2});
  const Tensor<double> context = flows::one_hot<double>(labels, 3);
  const auto logp = model.log_prob(Tensor<double>(x), context).value();
  const auto each = model.log_prob_each_class(Tensor<double>(x)).value();
  REQUIRE(each.shape() == std::vector<std::size_t>{4, 3});
  for (std::size_t i = 0; i < 4; ++i) CHECK(each(i, labels[i]) == logp(i));  // the same sums, in the same order
  CHECK(std::abs(each(0, 0) - each(0, 1)) > 1e-3);                            // the class matters
  const auto posterior = log_posterior(each);
  for (std::size_t i = 0; i < 4; ++i) {
    double total = 0;
    for (std::size_t k = 0; k < 3; ++k) total += std::exp(posterior(i, k));
    CHECK(total == doctest::Approx(1.0).epsilon(1e-12));
  }

  // Every parameter, the class map included, gets a gradient from log p(x | y).
  model.zero_grad();
  sum(model.log_prob(Tensor<double>(x), context)).backward();
  for (auto& named : model.named_parameters()) {  // a plain variable: clang refuses structured bindings in CAPTURE
    const std::string& name = named.first;
    const Tensor<double>& p = named.second;
    CAPTURE(name);
    CHECK(p.has_grad());
  }
  model.zero_grad();

  // At temperature 0 a class's samples are its mode: equal within a class, not across.
  const auto s = model.sample_checked(4, 0.0, flows::one_hot<double>(labels_of({1, 1, 2, 2}), 3)).x.value();
  const std::size_t d = model.dims();
  double same = 0, across = 0;
  for (std::size_t j = 0; j < d; ++j)
    same = std::max(same, std::abs(s.data()[j] - s.data()[d + j])),
    across = std::max(across, std::abs(s.data()[d + j] - s.data()[2 * d + j]));
  CHECK(same == 0.0);
  CHECK(across > 1e-3);

  CHECK_THROWS_AS(model.log_prob(Tensor<double>(x)), std::invalid_argument);  // the class is needed
  CHECK_THROWS_AS(model.log_prob(Tensor<double>(x), flows::one_hot<double>(labels_of({0, 1}), 3)), ShapeError);
  CHECK_THROWS_AS(flows::one_hot<double>(labels_of({3}), 3), std::invalid_argument);
  flows::Glow<double> plain(tiny(0));
  CHECK_THROWS_AS(plain.log_prob(Tensor<double>(x), context), std::invalid_argument);
  CHECK_THROWS_AS(plain.log_prob_each_class(Tensor<double>(x)), std::invalid_argument);
}

}  // namespace

TEST_CASE("conditional Glow: inverse, log-det, log p(x | y) per class, p(y | x) sums to 1, sampling per class") {
  for (const Variant& v : kVariants) {
    const std::string variant = v.name;
    CAPTURE(variant);
    check_conditional(v);
  }
}

TEST_CASE("conditional Glow: float64 gradcheck of log p(x | y) in the input and every parameter") {
  for (const Variant& v : kVariants) {
    const std::string variant = v.name;
    CAPTURE(variant);
    manual_seed(720);
    flows::Glow<double> model(tiny(2, 8, v));
    model.set_actnorm_data_init(false);
    perturb_parameters(model, 0.2, 721);
    const Tensor<double> x(rand_uniform({2, 1, 8, 8}, 722, 0.1, 0.9), true);
    const Tensor<double> context = flows::one_hot<double>(labels_of({1, 0}), 2);
    CHECK(gradcheck([&](const auto& in) { return model.log_prob(in[0], context); }, {x}, model.named_parameters()));
  }
}

TEST_CASE("class_nll: the generative classifier's -log p(y | x); float64 gradcheck through log_prob_each_class") {
  for (const Variant& v : kVariants) {
    const std::string variant = v.name;
    CAPTURE(variant);
    manual_seed(725);
    flows::Glow<double> model(tiny(3, 8, v));
    model.set_actnorm_data_init(false);
    perturb_parameters(model, 0.2, 726);
    const Tensor<double> x(rand_uniform({2, 1, 8, 8}, 727, 0.1, 0.9), true);
    const auto labels = labels_of({2, 0});
    const Tensor<double> context = flows::one_hot<double>(labels, 3);
    const auto each = model.log_prob_each_class(x).value();
    const auto want = log_posterior(each);
    const auto got = flows::class_nll(Tensor<double>(each), context).value();
    for (std::size_t i = 0; i < labels.size(); ++i) CHECK(got(i) == doctest::Approx(-want(i, labels[i])).epsilon(1e-12));
    CHECK(std::abs(got(0) - got(1)) > 1e-6);  // the examples differ: not log 3 twice
    CHECK(gradcheck([&](const auto& in) { return flows::class_nll(model.log_prob_each_class(in[0]), context); }, {x},
                    model.named_parameters()));
    CHECK_THROWS_AS(flows::class_nll(Tensor<double>(each), flows::one_hot<double>(labels_of({1, 0}), 2)), ShapeError);
  }
}

TEST_CASE("conditional Glow: each p(x | y) is normalised (importance sampling from another class)") {
  // E over x ~ p(x | a) of p(x | b) / p(x | a) = integral of p(x | b) = 1: on 1x2x2 images
  // (no split), and on 1x4x4 ones whose split prior is conditioned too.
  const std::pair<Variant, std::size_t> cases[] = {{kVariants[0], 2}, {kVariants[2], 4}, {kVariants[3], 4}};
  for (const auto& [v, size] : cases) {
    const std::string variant = v.name;
    CAPTURE(variant);
    manual_seed(730);
    flows::Glow<double> model(tiny(2, size, v));
    model.set_actnorm_data_init(false);
    perturb_parameters(model, size == 2 ? 0.15 : 0.1, 731);  // 16 values: smaller class gaps keep the weights' variance low
    const std::size_t n = 20000;
    const Tensor<double> x = model.sample_checked(n, 1.0, flows::one_hot<double>(std::vector<std::uint8_t>(n, 0), 2)).x;
    const auto each = model.log_prob_each_class(x).value();
    double mean = 0, square = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double w = std::exp(each(i, 1) - each(i, 0));
      mean += w / double(n), square += w * w / double(n);
    }
    const double standard_error = std::sqrt((square - mean * mean) / double(n));
    CAPTURE(mean);
    CAPTURE(standard_error);
    CHECK(standard_error < 0.05);
    CHECK(std::abs(mean - 1.0) < 4 * standard_error + 1e-3);
    CHECK(std::abs(each(0, 0) - each(0, 1)) > 1e-3);  // the classes differ: the check is not 1 = 1
  }
}

TEST_CASE("conditional Glow learns two Gaussians: its classifier reaches the Bayes accuracy") {
  // Class y in {0, 1}: (x1, x2) ~ N((2y - 1, 0), I), two more values N(0, I) whatever the
  // class (a 1x2x2 image). The Bayes classifier is x1 > 0, right with probability
  // Phi(1) = 0.8413.
  manual_seed(740);
  flows::Glow<float> model(tiny(2, 2));
  nn::Adam<float> adam(model.named_parameters(), 1e-2);
  Generator rng(741);
  auto draw = [&](std::size_t n, std::vector<std::uint8_t>& labels) {
    xt::xarray<float> x = normal<float>({n, 1, 2, 2}, 0.0f, 1.0f, rng);
    labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      labels[i] = std::uint8_t(rng() & 1);
      x(i, 0, 0, 0) += labels[i] ? 1.0f : -1.0f;
    }
    return x;
  };
  std::vector<std::uint8_t> labels;
  for (int step = 0; step < 400; ++step) {
    const Tensor<float> x(draw(256, labels));
    const Tensor<float> loss = -mean(model.log_prob(x, flows::one_hot<float>(labels, 2)));
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  model.eval();
  NoGrad no_grad;
  const Tensor<float> test(draw(8000, labels));
  const auto each = model.log_prob_each_class(test).value();
  std::size_t right = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) right += (each(i, 1) > each(i, 0)) == (labels[i] == 1);
  const double accuracy = double(right) / double(labels.size());
  MESSAGE("two-Gaussian toy: generative classifier accuracy ", accuracy, " (Bayes 0.8413)");
  CHECK(accuracy == doctest::Approx(0.8413).epsilon(0.025 / 0.8413));
}
