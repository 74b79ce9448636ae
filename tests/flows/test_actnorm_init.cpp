// ActNorm's data-dependent init: per-channel mean 0 and std 1 on the init batch, only in
// training mode, only once, switchable off, and never redone after save -> load.
#include <doctest/doctest.h>

#include <filesystem>

#include <xtensor/xview.hpp>

#include "flow_checks.hpp"
#include "flows/actnorm.hpp"
#include "flows/glow.hpp"
#include "nn/checkpoint.hpp"

using namespace flowgrad;
using namespace flow_checks;

namespace {
Arr channel_data(std::size_t b, unsigned seed) {
  Arr x = randn({b, 3, 4, 4}, seed);
  for (std::size_t i = 0; i < b; ++i)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t h = 0; h < 4; ++h)
        for (std::size_t w = 0; w < 4; ++w) x(i, c, h, w) = x(i, c, h, w) * (c + 0.5) + 3.0 * c - 2.0;
  return x;
}
}  // namespace

TEST_CASE("the first training batch comes out with per-channel mean 0 and std 1") {
  manual_seed(100);
  flows::ActNorm<double> f(3);
  CHECK(!f.initialized());
  Arr x = channel_data(8, 1);
  Arr y = f.forward(Tensor<double>(x)).y.value();
  CHECK(f.initialized());
  const double n = 8 * 16;
  for (std::size_t c = 0; c < 3; ++c) {
    Arr yc = xt::view(y, xt::all(), c);
    const double m = xt::sum(yc)() / n;
    const double var = xt::sum((yc - m) * (yc - m))() / (n - 1);  // unbiased, as torch.std
    CHECK(std::abs(m) < 1e-12);
    CHECK(std::abs(std::sqrt(var) - 1) < 1e-5);
  }
  // Not redone on the next batch.
  Arr loc = f.loc.value();
  f.forward(Tensor<double>(channel_data(8, 2)));
  CHECK(f.loc.value() == loc);
}

TEST_CASE("no init in eval mode or when switched off") {
  manual_seed(200);
  flows::ActNorm<double> evaluating(3);
  evaluating.eval();
  evaluating.forward(Tensor<double>(channel_data(4, 3)));
  CHECK(!evaluating.initialized());
  CHECK(xt::amax(xt::abs(evaluating.loc.value()))() == 0.0);
  flows::ActNorm<double> off(3);
  off.set_data_init(false);
  off.forward(Tensor<double>(channel_data(4, 3)));
  CHECK(!off.initialized());
  CHECK(xt::amax(xt::abs(off.loc.value()))() == 0.0);
  flows::ActNorm<double> one(3);
  CHECK_THROWS_AS(one.forward(Tensor<double>(randn({1, 3, 1, 1}, 4))), ShapeError);  // 1 value per channel
}

TEST_CASE("a trained Glow saved and loaded keeps its ActNorm state and is not re-initialised") {
  manual_seed(300);
  flows::GlowConfig cfg;
  cfg.height = cfg.width = 8, cfg.steps = 2, cfg.hidden = 6;
  flows::Glow<double> trained(cfg);
  const Arr x = rand_uniform({4, 1, 8, 8}, 5, 0, 1);
  trained.forward(Tensor<double>(x));  // training mode: every ActNorm initialises
  std::size_t actnorms = 0;
  for (auto& [name, t] : trained.named_buffers())
    if (name.find("initialized") != std::string::npos) {
      ++actnorms;
      CHECK(t.value()(0) == 1.0);
    }
  CHECK(actnorms == 4);
  const auto path = std::filesystem::temp_directory_path() / "flowgrad_actnorm_glow.safetensors";
  nn::save_module(path.string(), trained);

  flows::Glow<double> loaded(cfg);
  nn::load_module(path.string(), loaded);
  std::filesystem::remove(path);
  const Arr other = rand_uniform({4, 1, 8, 8}, 6, 0.2, 0.4);  // a different batch, in training mode
  const Arr logp_loaded = loaded.log_prob(Tensor<double>(other)).value();
  const Arr logp_trained = trained.log_prob(Tensor<double>(other)).value();
  CHECK(max_abs_diff(logp_loaded, logp_trained) == 0.0);
  auto a = trained.state(), b = loaded.state();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(a[i].first);
    CHECK(a[i].second.value() == b[i].second.value());
  }
}
