// The moving average of the parameters (Polyak averaging), and the pieces of the training
// recipe beside it: the time-budget planner and the optimizer by name.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>

#include "autograd/autograd.hpp"
#include "nn/ema.hpp"
#include "nn/optim.hpp"
#include "nn/safetensors.hpp"
#include "support.hpp"

using namespace flowgrad;

TEST_CASE("moving average: the first update copies, then d = min(decay, (1 + n) / (10 + n))") {
  Tensor<double> w(xt::xarray<double>{1.0, 2.0}, true);
  nn::ExponentialMovingAverage<double> ema({{"w", w}}, 0.5);
  CHECK(ema.state().empty());
  ema.swap();  // nothing to swap before the first update
  CHECK(w.value() == xt::xarray<double>{1.0, 2.0});

  ema.update();  // copies: average = (1, 2)
  w.value() = {11.0, 2.0};
  ema.update();  // n = 1: d = min(0.5, 2 / 11)
  const double d1 = 2.0 / 11;
  double want = d1 * 1 + (1 - d1) * 11;
  w.value() = {21.0, 2.0};
  ema.update();  // n = 2: d = min(0.5, 3 / 12) = 0.25
  want = 0.25 * want + 0.75 * 21;
  for (int n = 3; n < 30; ++n) {  // from n = 8 on, d = decay
    ema.update();
    want = std::min(0.5, (1.0 + n) / (10.0 + n)) * want + (1 - std::min(0.5, (1.0 + n) / (10.0 + n))) * 21;
  }
  CHECK(ema.updates() == 30);

  ema.swap();  // the average in the parameter, the trained value kept aside
  CHECK(w.value()(0) == doctest::Approx(want).epsilon(1e-14));
  CHECK(w.value()(1) == 2.0);
  ema.swap();
  CHECK(w.value()(0) == 21.0);

  // AveragedWeights swaps back at the end of its scope, also when an exception leaves it.
  try {
    nn::AveragedWeights<double> averaged(&ema);
    CHECK(w.value()(0) == doctest::Approx(want).epsilon(1e-14));
    throw std::runtime_error("evaluation failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(w.value()(0) == 21.0);
  { nn::AveragedWeights<double> none(nullptr); }  // no average: nothing happens
  CHECK(w.value()(0) == 21.0);
  CHECK_THROWS_AS(nn::ExponentialMovingAverage<double>({{"w", w}}, 1.0), std::invalid_argument);
}

TEST_CASE("moving average state: named ema.*, restored exactly, bad states refused naming every problem") {
  Tensor<float> a(xt::xarray<float>{1, 2, 3}, true), b(xt::xarray<float>{{4, 5}}, true);
  nn::ExponentialMovingAverage<float> ema({{"a", a}, {"b", b}}, 0.99);
  ema.update();
  a.value() += 1.0f;
  ema.update();
  flowgrad::testing::TempDir tmp;
  nn::save_safetensors(tmp / "ema.safetensors", ema.state());
  const nn::NamedValues saved = nn::load_safetensors(tmp / "ema.safetensors").tensors;
  REQUIRE(saved.size() == 3);
  CHECK(saved[0].first == "ema.updates");
  CHECK(saved[1].first == "ema.a");

  nn::ExponentialMovingAverage<float> other({{"a", a}, {"b", b}}, 0.99);
  other.load_state(saved, "test");
  CHECK(other.updates() == 2);
  ema.swap();
  const xt::xarray<float> want = a.value();
  ema.swap();
  other.swap();
  CHECK(a.value() == want);
  other.swap();

  nn::NamedValues bad = saved;
  bad.pop_back();                                                    // ema.b missing
  bad.emplace_back("ema.c", xt::xarray<float>{1});                   // unexpected
  std::get<xt::xarray<float>>(bad[1].second) = xt::xarray<float>{1};  // ema.a mis-shaped
  try {
    other.load_state(bad, "ck.safetensors");
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find("ck.safetensors") != std::string::npos);
    CHECK(msg.find("ema.b") != std::string::npos);
    CHECK(msg.find("ema.c") != std::string::npos);
    CHECK(msg.find("ema.a: found F32 (1,)") != std::string::npos);
  }
  CHECK(other.updates() == 2);  // unchanged
  // No state at all: a run that never updated.
  other.load_state({}, "empty");
  CHECK(other.updates() == 0);
  CHECK(other.state().empty());
}

TEST_CASE("a time budget plans the steps that fit, evaluations included") {
  // 60 s, 0.1 s a step, an evaluation of 2 s every 100 steps and one at the end:
  // n = (60 - 2) / (0.1 + 2 / 100) = 483.3
  CHECK(nn::steps_that_fit(60, 0.1, 2, 0.01) == 483);
  CHECK(nn::steps_that_fit(60, 0.1, 0, 0) == 600);
  CHECK(nn::steps_that_fit(1, 0.1, 5, 0.01) == 1);  // nothing fits: at least one step
  CHECK(nn::steps_that_fit(NAN, 0.1, 0, 0) == 1);
}

TEST_CASE("optimizers by name") {
  Tensor<float> w(xt::xarray<float>{1, 2}, true);
  CHECK(nn::make_optimizer<float>("adam", {{"w", w}}, 1e-3)->kind() == "adam");
  CHECK(nn::make_optimizer<float>("adamw", {{"w", w}}, 1e-3, 0.1)->kind() == "adamw");
  CHECK(nn::make_optimizer<float>("adamax", {{"w", w}}, 1e-3)->kind() == "adamax");
  CHECK_THROWS_WITH_AS(nn::make_optimizer<float>("sgdx", {{"w", w}}, 1e-3),
                       doctest::Contains("adam, adamw or adamax"), std::invalid_argument);
}
