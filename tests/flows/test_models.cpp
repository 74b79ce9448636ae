// NICE, Real NVP and Glow at small sizes: invertibility both ways, logdet against the
// full Jacobian of x -> (all latents), priors, sampling; and the bench configs'
// parameter counts and names (the reference's).
#include <doctest/doctest.h>

#include <map>
#include <memory>

#include "autograd/shape.hpp"
#include "flow_checks.hpp"
#include "flows/bits_per_dim.hpp"
#include "flows/models.hpp"
#include "flows/squeeze.hpp"

using namespace flowgrad;
using namespace flow_checks;

namespace {
struct Errors {
  double inverse = 0, latent_inverse = 0, logdet = 0;
};
std::map<std::string, Errors> worst;

Tensor<double> flat_latents(const std::vector<Tensor<double>>& zs) {
  std::vector<Tensor<double>> parts;
  for (auto& z : zs) parts.push_back(flatten(z, 1));
  return concat(parts, 1);
}

Shape batch_of(std::size_t n, const Shape& per_example) {
  Shape s{n};
  s.insert(s.end(), per_example.begin(), per_example.end());
  return s;
}

// Everything a model must satisfy, at a batch of 2 inputs in [0,1).
void check_model(flows::FlowModel<double>& model, const std::string& label, unsigned seed) {
  CAPTURE(label);
  model.set_actnorm_data_init(false);
  perturb_parameters(model, 0.05, seed);
  Errors& e = worst[model.name()];
  const Arr x = rand_uniform(batch_of(2, model.input_shape()), seed + 1, 0.02, 0.98);
  auto lat = model.forward(Tensor<double>(x));
  REQUIRE(lat.logdet.shape() == Shape{2});

  // x -> zs -> x
  auto back = model.inverse(lat.zs);
  const double inv_err = max_abs_diff(back.y.value(), x);
  CHECK(inv_err < 1e-10);
  CHECK(max_abs_diff(back.logdet.value(), -lat.logdet.value()) < 1e-9);
  e.inverse = std::max(e.inverse, inv_err);

  // z (temperature 0.7) -> x -> z
  std::vector<Tensor<double>> zs;
  for (std::size_t i = 0; i < lat.zs.size(); ++i) zs.emplace_back(randn(lat.zs[i].shape(), seed + 10 + i, 0.7));
  auto x_of_z = model.inverse(zs);
  auto again = model.forward(x_of_z.y);
  double z_err = 0;
  for (std::size_t i = 0; i < zs.size(); ++i) z_err = std::max(z_err, max_abs_diff(again.zs[i].value(), zs[i].value()));
  CHECK(z_err < 1e-10);
  e.latent_inverse = std::max(e.latent_inverse, z_err);

  // logdet = log|det d(all latents)/dx|
  const double ld_err = logdet_error(
      [&](const Tensor<double>& t) { return flat_latents(model.forward(t).zs); }, x, lat.logdet.value());
  CHECK(ld_err < 1e-6);
  e.logdet = std::max(e.logdet, ld_err);

  // log p(x) is finite per example, and differentiable in every parameter.
  auto logp = model.log_prob(Tensor<double>(x));
  REQUIRE(logp.shape() == Shape{2});
  CHECK(std::isfinite(logp.value()(0)));
  model.zero_grad();
  sum(logp).backward();
  std::size_t with_grad = 0;
  for (auto& [name, p] : model.named_parameters()) with_grad += p.has_grad();
  CHECK(with_grad == model.named_parameters().size());
  model.zero_grad();

  // Sampling: shape, finite; at temperature 0 every sample is the same (the mode path).
  auto s = model.sample(3, 0.7);
  CHECK(s.shape() == batch_of(3, model.input_shape()));
  CHECK(!s.requires_grad());
  CHECK(std::isfinite(xt::sum(s.value())()));
  auto s0 = model.sample(2, 0.0).value();
  const std::size_t d = model.dims();
  double spread = 0;
  for (std::size_t i = 0; i < d; ++i) spread = std::max(spread, std::abs(s0.data()[i] - s0.data()[d + i]));
  CHECK(spread == 0.0);

  CHECK_THROWS_AS(model.log_prob(Tensor<double>(xt::zeros<double>({2, 3}))), ShapeError);
  CHECK_THROWS_AS(model.inverse({}), ShapeError);
}
}  // namespace

TEST_CASE("NICE, small: logistic and Gaussian priors, with and without logit") {
  manual_seed(100);
  flows::NICEConfig cfg;
  cfg.dim = 8, cfg.hidden = 12, cfg.layers = 2, cfg.couplings = 4;
  flows::NICE<double> logistic(cfg);
  check_model(logistic, "nice logistic", 100);
  cfg.prior = flows::NICEConfig::Prior::Gaussian;
  cfg.logit_alpha = 1e-6;
  flows::NICE<double> gaussian(cfg);
  check_model(gaussian, "nice gaussian + logit", 110);
}

TEST_CASE("NICE log p = logistic log p(z) + sum log_scale, as the reference computes it") {
  manual_seed(200);
  flows::NICEConfig cfg;
  cfg.dim = 6, cfg.hidden = 5, cfg.layers = 1, cfg.couplings = 2;
  flows::NICE<double> model(cfg);
  perturb_parameters(model, 0.1, 120);
  Arr x = rand_uniform({3, 6}, 121, 0, 1);
  auto lat = model.forward(Tensor<double>(x));
  const Arr& z = lat.zs[0].value();
  Arr logp = model.log_prob(Tensor<double>(x)).value();
  for (std::size_t b = 0; b < 3; ++b) {
    double want = xt::sum(model.log_scale.value())();
    for (std::size_t i = 0; i < 6; ++i) {
      const double v = z(b, i);
      want -= std::log1p(std::exp(v)) + std::log1p(std::exp(-v));
    }
    CHECK(logp(b) == doctest::Approx(want).epsilon(1e-12));
  }
}

TEST_CASE("Real NVP, small: 2 and 3 scales, with logit") {
  manual_seed(300);
  flows::RealNVPConfig cfg;
  cfg.height = cfg.width = 4, cfg.mid = 6, cfg.blocks = 1;
  flows::RealNVP<double> two(cfg);
  check_model(two, "realnvp 2 scales", 200);
  cfg.height = cfg.width = 8, cfg.scales = 3, cfg.checkerboard = 2, cfg.channelwise = 2, cfg.final_couplings = 2;
  cfg.logit_alpha = 0.05;
  flows::RealNVP<double> three(cfg);
  check_model(three, "realnvp 3 scales + logit", 210);
  std::vector<std::string> tops;
  for (auto& [name, c] : three.children()) tops.push_back(name);
  CHECK(tops == std::vector<std::string>{"s1a", "s1b", "s2a", "s2b", "final"});
}

TEST_CASE("Real NVP factors out the first half under N(0, I), as the reference") {
  manual_seed(400);
  flows::RealNVPConfig cfg;
  cfg.height = cfg.width = 4, cfg.mid = 4, cfg.blocks = 1;
  flows::RealNVP<double> model(cfg);
  perturb_parameters(model, 0.05, 220);
  Arr x = rand_uniform({2, 1, 4, 4}, 221, 0, 1);
  auto lat = model.forward(Tensor<double>(x));
  REQUIRE(lat.zs.size() == 2);
  CHECK(lat.zs[0].shape() == Shape{2, 2, 2, 2});
  CHECK(lat.zs[1].shape() == Shape{2, 2, 2, 2});
  // The factored-out half is the first half of the channels after s1b.
  Tensor<double> h(x);
  h = model.before_squeeze[0]->forward(h).y;
  h = model.after_squeeze[0]->forward(flows::squeeze2x2(h)).y;
  CHECK(max_abs_diff(slice(h, 1, 0, 2).value(), lat.zs[0].value()) == 0.0);
  flows::StandardGaussian<double> g;
  Arr want = g.log_prob(lat.zs[0]).value() + g.log_prob(lat.zs[1]).value() + lat.logdet.value();
  CHECK(max_abs_diff(model.log_prob(Tensor<double>(x)).value(), want) < 1e-12);
}

TEST_CASE("Glow, small: LU/dense, affine/additive, 2 and 3 levels, learned top prior") {
  manual_seed(500);
  flows::GlowConfig cfg;
  cfg.height = cfg.width = 8, cfg.steps = 2, cfg.hidden = 6;
  flows::Glow<double> base(cfg);
  check_model(base, "glow LU affine", 300);
  cfg.lu = false, cfg.affine = false, cfg.levels = 3, cfg.learn_top = true;
  flows::Glow<double> other(cfg);
  check_model(other, "glow dense additive 3 levels learn-top", 310);
  cfg.lu = true, cfg.affine = true, cfg.levels = 2, cfg.channels = 3, cfg.logit_alpha = 0.05;
  cfg.height = cfg.width = 4;
  flows::Glow<double> rgb(cfg);
  check_model(rgb, "glow rgb + logit", 320);
}

TEST_CASE("Glow with the bounded coupling scale and ActNorm in its nets") {
  manual_seed(520);
  flows::GlowConfig cfg;
  cfg.height = cfg.width = 8, cfg.steps = 2, cfg.hidden = 6, cfg.scale_clamp = 2, cfg.net_actnorm = true;
  cfg.learn_top = true, cfg.logit_alpha = 0.05, cfg.prior_scale_cap = 2;
  flows::Glow<double> model(cfg);
  check_model(model, "glow clamped scale + capped split prior + net ActNorm + logit", 340);
}

TEST_CASE("sampling: the sigmoid scale overflows where the bounded scale cannot") {
  for (double clamp : {0.0, 2.0}) {
    CAPTURE(clamp);
    manual_seed(530);
    flows::GlowConfig cfg;
    cfg.height = cfg.width = 8, cfg.steps = 2, cfg.hidden = 6, cfg.logit_alpha = 0.05, cfg.scale_clamp = clamp;
    flows::Glow<float> model(cfg);
    model.eval();
    // Every coupling's net says "scale as small as you can" on the scale channels (odd outputs).
    for (auto& [name, p] : model.named_parameters())
      if (name.find("net.4.conv.bias") != std::string::npos)
        for (std::size_t i = 1; i < p.size(); i += 2) p.value()(i) = -1e3f;
    auto drawn = model.sample_checked(16, 1.0f);
    REQUIRE(drawn.finite.size() == 16);
    const auto finite = std::count(drawn.finite.begin(), drawn.finite.end(), true);
    if (clamp == 0) {
      CHECK(finite == 0);  // 1 / sigmoid(-998) = inf
    } else {
      CHECK(finite == 16);
      CHECK(xt::all(xt::isfinite(drawn.x.value())));
    }
  }
}

TEST_CASE("sampling: an unbounded split prior overflows where the capped one cannot") {
  for (double cap : {0.0, 2.0}) {
    CAPTURE(cap);
    manual_seed(540);
    flows::GlowConfig cfg;
    cfg.height = cfg.width = 8, cfg.steps = 2, cfg.hidden = 6, cfg.logit_alpha = 0.05, cfg.scale_clamp = 2;
    cfg.prior_scale_cap = cap;
    flows::Glow<float> model(cfg);
    model.eval();
    // The split prior says "sigma as large as you can" (its odd outputs are log sigma).
    for (auto& [name, p] : model.named_parameters())
      if (name.rfind("priors.", 0) == 0 && name.find("conv.bias") != std::string::npos)
        for (std::size_t i = 1; i < p.size(); i += 2) p.value()(i) = 1e3f;
    auto drawn = model.sample_checked(16, 1.0f);
    const auto finite = std::count(drawn.finite.begin(), drawn.finite.end(), true);
    CHECK(finite == (cap == 0 ? 0 : 16));  // exp(1e3) = inf; capped, sigma < e^2
  }
}

TEST_CASE("Glow keeps the first half and models the second with the ZeroConv prior") {
  manual_seed(600);
  flows::GlowConfig cfg;
  cfg.height = cfg.width = 4, cfg.steps = 1, cfg.hidden = 4;
  flows::Glow<double> model(cfg);
  model.set_actnorm_data_init(false);
  const Arr x = rand_uniform({2, 1, 4, 4}, 330, 0, 1);
  flows::StandardGaussian<double> g;
  {  // Fresh, the ZeroConv prior outputs 0: mean 0, log-scale 0, i.e. N(0, I).
    auto lat = model.forward(Tensor<double>(x));
    Arr want = g.log_prob(lat.zs[0]).value() + g.log_prob(lat.zs[1]).value() + lat.logdet.value();
    CHECK(max_abs_diff(model.log_prob(Tensor<double>(x)).value(), want) < 1e-12);
  }
  perturb_parameters(model, 0.1, 331);
  auto level = [&](std::size_t l) {
    return std::dynamic_pointer_cast<flows::Flow<double>>(model.levels->children().at(l).second);
  };
  auto prior = std::dynamic_pointer_cast<nn::Layer<double>>(model.priors->children().at(0).second);
  auto lat = model.forward(Tensor<double>(x));
  // The reference's forward, by hand.
  auto l0 = level(0)->forward(flows::squeeze2x2(Tensor<double>(x)));
  auto halves = chunk(l0.y, 2, 1);
  CHECK(max_abs_diff(halves[1].value(), lat.zs[0].value()) == 0.0);  // z = the second half
  auto l1 = level(1)->forward(flows::squeeze2x2(halves[0]));
  CHECK(max_abs_diff(l1.y.value(), lat.zs[1].value()) == 0.0);
  Arr h = prior->forward(halves[0]).value();
  const Arr& z = halves[1].value();
  Arr want = l0.logdet.value() + l1.logdet.value() + g.log_prob(l1.y).value();
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 2; ++j) {
          const double mean = h(b, 2 * c, i, j), logs = h(b, 2 * c + 1, i, j), d = z(b, c, i, j) - mean;
          want(b) += -0.5 * (std::log(2 * M_PI) + 2 * logs + d * d * std::exp(-2 * logs));
        }
  CHECK(max_abs_diff(model.log_prob(Tensor<double>(x)).value(), want) < 1e-12);
}

TEST_CASE("bench configs: the reference's parameter counts and names") {
  manual_seed(700);
  auto nice = flows::make_bench_model<float>("nice");
  auto realnvp = flows::make_bench_model<float>("realnvp");
  auto glow = flows::make_bench_model<float>("glow");
  CHECK(nice->parameter_count() == 19158352);
  CHECK(realnvp->parameter_count() == 2994693);
  CHECK(glow->parameter_count() == 433968);
  MESSAGE("parameters: nice " << nice->parameter_count() << ", realnvp " << realnvp->parameter_count()
                              << ", glow " << glow->parameter_count());
  auto shapes = [](const flows::FlowModel<float>& m) {
    std::map<std::string, Shape> out;
    for (auto& [n, t] : m.state()) out[n] = t.shape();
    return out;
  };
  auto n = shapes(*nice), r = shapes(*realnvp), g = shapes(*glow);
  CHECK(n.size() == 49);
  CHECK(n["nets.3.10.weight"] == Shape{392, 1000});
  CHECK(n["nets.0.0.weight"] == Shape{1000, 392});
  CHECK(n["log_scale"] == Shape{784});
  CHECK(r["s1a.0.mask"] == Shape{1, 28, 28});
  CHECK(r["s1a.2.net.blocks.3.3.weight"] == Shape{64, 64, 3, 3});
  CHECK(r["s1b.1.net.out.weight"] == Shape{8, 64, 3, 3});
  CHECK(r["s1b.1.scale"] == Shape{4, 1, 1});
  CHECK(r["final.3.net.inp.weight"] == Shape{64, 2, 3, 3});
  CHECK(g["levels.0.0.0.loc"] == Shape{1, 4, 1, 1});
  CHECK(g["levels.1.7.1.P"] == Shape{8, 8});
  CHECK(g["levels.1.7.1.log_s"] == Shape{8});
  CHECK(g["levels.1.7.2.net.0.weight"] == Shape{128, 4, 3, 3});
  CHECK(g["levels.1.7.2.net.2.weight"] == Shape{128, 128, 1, 1});
  CHECK(g["levels.1.7.2.net.4.conv.weight"] == Shape{8, 128, 3, 3});
  CHECK(g["levels.1.7.2.net.4.logs"] == Shape{1, 8, 1, 1});
  CHECK(g["priors.0.conv.weight"] == Shape{4, 2, 3, 3});
  CHECK(g["priors.0.logs"] == Shape{1, 4, 1, 1});
  CHECK(g.count("priors.1.logs") == 0);
  // Every name maps to itself; only ActNorm's `initialized` has no reference counterpart.
  for (auto& [name, t] : glow->state()) {
    auto ref = glow->reference_name(name);
    if (name.size() > 12 && name.substr(name.size() - 12) == ".initialized") CHECK(!ref);
    else CHECK(ref == name);
  }
  CHECK_THROWS_AS(flows::make_bench_model<float>("maf"), std::invalid_argument);
}

TEST_CASE("the whole Glow bench config in float32 inverts to 1e-4") {
  manual_seed(800);
  auto model = flows::make_bench_model<float>("glow");
  const xt::xarray<float> x = xt::cast<float>(rand_uniform({4, 1, 28, 28}, 400, 0, 1));
  model->forward(Tensor<float>(x));  // training mode: ActNorm's data-dependent init
  perturb_parameters(*model, 0.01, 401);
  NoGrad no_grad;
  auto lat = model->forward(Tensor<float>(x));
  const double inv_err = max_abs_diff(model->inverse(lat.zs).y.value(), x);
  CHECK(inv_err < 1e-4);
  std::vector<Tensor<float>> zs;
  for (std::size_t i = 0; i < lat.zs.size(); ++i)
    zs.emplace_back(xt::xarray<float>(xt::cast<float>(randn(lat.zs[i].shape(), 402 + i, 0.7))));
  auto again = model->forward(model->inverse(zs).y);
  double z_err = 0;
  for (std::size_t i = 0; i < zs.size(); ++i) z_err = std::max(z_err, max_abs_diff(again.zs[i].value(), zs[i].value()));
  CHECK(z_err < 1e-4);
  MESSAGE("glow bench float32: x->z->x " << inv_err << ", z->x->z (T=0.7) " << z_err);
}

TEST_CASE("bits per dim") {
  manual_seed(900);
  // A uniform density on [0,1)^D has log p = 0: exactly 8 bits per dimension.
  CHECK(flows::bits_per_dim(0.0, 784) == doctest::Approx(8.0));
  CHECK(flows::bits_per_dim(-784 * std::log(2.0), 784) == doctest::Approx(9.0));
  Tensor<double> logp(Arr{0.0, 784 * std::log(2.0)});
  auto bpd = flows::bits_per_dim(logp, 784).value();
  CHECK(bpd(0) == doctest::Approx(8.0));
  CHECK(bpd(1) == doctest::Approx(7.0));
}

TEST_CASE("worst errors per model") {
  manual_seed(1000);
  for (auto& [name, e] : worst)
    MESSAGE(name << ": x->z->x " << e.inverse << ", z->x->z " << e.latent_inverse << ", logdet vs Jacobian "
                 << e.logdet);
}
