// Optimizers against torch.optim, gradient clipping, warmup, and training a small MLP.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>

#include "autograd/autograd.hpp"
#include "nn/activation.hpp"
#include "nn/linear.hpp"
#include "nn/optim.hpp"
#include "nn/sequential.hpp"

using namespace flowgrad;

namespace {

// The tiny problem the reference numbers below come from: p (4 values) and q (2 values),
// gradient 2 (x - target) + 0.1 x^3 set by hand; q has no gradient on steps 1 and 2, so
// its per-parameter step count lags (torch keeps one per parameter).
template <class T>
std::vector<double> five_steps(const std::function<std::unique_ptr<nn::Optimizer<T>>(nn::Named<T>)>& make) {
  Tensor<T> p(xt::xarray<T>{0.5, -1.0, 2.0, -0.25}, true), q(xt::xarray<T>{0.2, 0.4}, true);
  const xt::xarray<T> tp{1.0, -2.0, 0.5, 3.0}, tq{0.3, -0.7};
  auto opt = make({{"p", p}, {"q", q}});
  auto set_grad = [](Tensor<T>& x, const xt::xarray<T>& target) {
    x.zero_grad();
    const xt::xarray<T> v = x.value();
    x.accumulate_grad(T(2) * (v - target) + T(0.1) * v * v * v);
  };
  for (int k = 1; k <= 5; ++k) {
    set_grad(p, tp);
    if (k >= 3) set_grad(q, tq); else q.zero_grad();
    opt->step();
  }
  CHECK(opt->step_count() == 5);
  std::vector<double> out(p.value().begin(), p.value().end());
  out.insert(out.end(), q.value().begin(), q.value().end());
  return out;
}

// Reference values: /usr/bin/python3 with torch 1.13, the same problem in float32 and
// float64 with torch.optim.{Adam(lr=0.1, weight_decay=0.01), AdamW(lr=0.1, weight_decay=0.1),
// Adamax(lr=0.1, weight_decay=0.01), SGD(lr=0.1, momentum=0.9, weight_decay=0.01),
// SGD(lr=0.1, momentum=0.9, nesterov=True), SGD(lr=0.1, momentum=0.9, dampening=0.3)},
// setting p.grad / q.grad (None on steps 1-2) by hand before each opt.step(); the values
// are p.tolist() + q.tolist() after 5 steps.
struct Reference {
  const char* name;
  std::vector<double> f32, f64;
};
const std::vector<Reference> kTorch = {
    {"adam",
     {0.9667757153511047, -1.488051176071167, 1.5055921077728271, 0.24836955964565277, 0.36919131875038147,
      0.10141299664974213},
     {0.9667756630321915, -1.488051017850586, 1.5055920285667375, 0.24836954295147667, 0.3691913149690458,
      0.10141297456911146}},
    {"adamw",
     {0.9373507499694824, -1.431596040725708, 1.4189900159835815, 0.2507169544696808, 0.3677085340023041,
      0.0925857275724411},
     {0.9373506489550831, -1.4315959163767773, 1.418989954691329, 0.2507169915759362, 0.36770849347759693,
      0.09258570713162496}},
    {"adamax",
     {0.8923534154891968, -1.435362458229065, 1.5416475534439087, 0.23426847159862518, 0.35624632239341736,
      0.11431670933961868},
     {0.8923533801540126, -1.4353624423467726, 1.5416476229850051, 0.23426847251620048, 0.3562463201042614,
      0.11431669648678996}},
    {"sgd",
     {1.2404468059539795, -2.252387285232544, -0.5868088603019714, 3.9296038150787354, 0.2922734320163727,
      -0.6340000033378601},
     {1.240446894586531, -2.252387384600885, -0.5868088999843343, 3.929603991944746, 0.2922734283893088,
      -0.6339999628521149}},
    {"sgd_nesterov",
     {1.1438225507736206, -1.9949626922607422, -0.18681077659130096, 2.9052531719207764, 0.310030072927475,
      -0.8184363842010498},
     {1.143822600503387, -1.9949626938679292, -0.18681085991024537, 2.9052533526318833, 0.3100300678527516,
      -0.8184364045614826}},
    {"sgd_dampening",
     {1.1813443899154663, -2.201164960861206, -0.3862375020980835, 3.8938887119293213, 0.2821771204471588,
      -0.5099693536758423},
     {1.1813443340420515, -2.2011649560622613, -0.3862374990400649, 3.8938889665067875, 0.28217710381483246,
      -0.5099693518266056}},
};

template <class T>
std::unique_ptr<nn::Optimizer<T>> make_optimizer(const std::string& name, nn::Named<T> ps) {
  if (name == "adam") return std::make_unique<nn::Adam<T>>(ps, 0.1, 0.9, 0.999, 1e-8, 0.01);
  if (name == "adamw") return std::make_unique<nn::Adam<T>>(ps, 0.1, 0.9, 0.999, 1e-8, 0.1, true);
  if (name == "adamax") return std::make_unique<nn::Adamax<T>>(ps, 0.1, 0.9, 0.999, 1e-8, 0.01);
  if (name == "sgd") return std::make_unique<nn::SGD<T>>(ps, 0.1, 0.9, 0.01);
  if (name == "sgd_nesterov") return std::make_unique<nn::SGD<T>>(ps, 0.1, 0.9, 0.0, true);
  if (name == "sgd_dampening") return std::make_unique<nn::SGD<T>>(ps, 0.1, 0.9, 0.0, false, 0.3);
  throw std::logic_error(name);
}

template <class T>
std::shared_ptr<nn::Sequential<T>> mlp(std::size_t hidden) {
  auto net = std::make_shared<nn::Sequential<T>>();
  net->push_back(std::make_shared<nn::Linear<T>>(2, hidden));
  net->push_back(std::make_shared<nn::ReLU<T>>());
  net->push_back(std::make_shared<nn::Linear<T>>(hidden, hidden));
  net->push_back(std::make_shared<nn::ReLU<T>>());
  net->push_back(std::make_shared<nn::Linear<T>>(hidden, 1));
  return net;
}

}  // namespace

TEST_CASE_TEMPLATE("optimizers follow torch.optim for 5 steps", T, float, double) {
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-12;
  for (auto& ref : kTorch) {
    CAPTURE(ref.name);
    const auto got = five_steps<T>([&](nn::Named<T> ps) { return make_optimizer<T>(ref.name, ps); });
    const auto& want = std::is_same_v<T, float> ? ref.f32 : ref.f64;
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(std::abs(got[i] - want[i]) <= tol);
    }
  }
}

TEST_CASE("Adam's vectorized body and scalar tail compute the same bits") {
  // 11 equal elements: the vectorized loop takes the first 8, its scalar epilogue the last 3.
  Tensor<float> p(xt::xarray<float>(xt::ones<float>({11}) * 0.3f), true);
  nn::Adam<float> opt({{"p", p}}, 0.01, 0.9, 0.999, 1e-8, 0.1);
  for (int k = 0; k < 3; ++k) {
    p.zero_grad();
    p.accumulate_grad(xt::xarray<float>(xt::ones<float>({11}) * (0.7f - 0.4f * float(k))));
    opt.step();
  }
  for (std::size_t j = 1; j < 11; ++j) CHECK(p.value()(j) == p.value()(0));
  CHECK(p.value()(0) != 0.3f);
}

TEST_CASE("Adam on a large parameter: torch's roundings bit for bit, on 1 and 2 threads") {
  // Large enough to be split over threads and to run the AVX2/AVX-512 clones' vector
  // bodies; the reference is the update written out, one rounding per op as in torch.
  const std::size_t n = 300001;
  manual_seed(3);
  const xt::xarray<float> p0 = uniform<float>({n}, -1.0f, 1.0f);
  std::vector<xt::xarray<float>> grads;
  for (int k = 0; k < 3; ++k) grads.push_back(uniform<float>({n}, -2.0f, 2.0f));
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  for (bool decoupled : {false, true}) {
    CAPTURE(decoupled);
    std::vector<float> p(p0.begin(), p0.end()), m(n, 0.0f), v(n, 0.0f);
    for (int k = 1; k <= 3; ++k) {
      const float step = float(-(lr / (1 - std::pow(b1, k)))), bias2_sqrt = float(std::sqrt(1 - std::pow(b2, k)));
      const float shrink = float(decoupled ? 1 - lr * wd : 1), l2 = float(decoupled ? 0 : wd);
      for (std::size_t j = 0; j < n; ++j) {
        const float pj = p[j] * shrink, gj = grads[k - 1](j) + l2 * pj;
        m[j] = m[j] * float(b1) + float(1 - b1) * gj;
        const float g2 = float(1 - b2) * gj * gj;
        v[j] = v[j] * float(b2) + g2;
        const float denom = std::sqrt(v[j]) / bias2_sqrt + float(eps);
        const float upd = step * m[j];
        p[j] = pj + upd / denom;
      }
    }
    const int before = num_threads();
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      set_num_threads(threads);
      Tensor<float> param(xt::xarray<float>(p0), true);
      nn::Adam<float> opt({{"p", param}}, lr, b1, b2, eps, wd, decoupled);
      for (int k = 0; k < 3; ++k) {
        param.zero_grad();
        param.accumulate_grad(xt::xarray<float>(grads[k]));
        opt.step();
      }
      std::size_t differ = 0;
      for (std::size_t j = 0; j < n; ++j) differ += param.value()(j) != p[j];
      CHECK(differ == 0);
    }
    set_num_threads(before);
  }
}

TEST_CASE("step skips parameters without a gradient; zero_grad drops gradients") {
  Tensor<float> a(xt::xarray<float>{1, 2}, true), b(xt::xarray<float>{3, 4}, true);
  nn::Adam<float> opt({{"a", a}, {"b", b}}, 0.1);
  a.accumulate_grad(xt::xarray<float>{1, -1});
  opt.step();
  CHECK(a.value()(0) < 1.f);
  CHECK(a.value()(1) > 2.f);
  CHECK(b.value() == xt::xarray<float>{3, 4});
  // Only a has state: b never had a gradient.
  std::vector<std::string> names;
  for (auto& v : opt.state()) names.push_back(v.name);
  CHECK(names == std::vector<std::string>{"adam.step", "adam.exp_avg.a", "adam.exp_avg_sq.a", "adam.param_step.a"});
  opt.zero_grad();
  CHECK_FALSE(a.has_grad());
  opt.set_lr(0.5);
  CHECK(opt.lr() == 0.5);
  a.accumulate_grad(xt::xarray<float>{1, 2, 3});
  CHECK_THROWS_WITH_AS(opt.step(), doctest::Contains("gradient of 'a' has shape (3,)"), ShapeError);
}

TEST_CASE("bad hyper-parameters and duplicate names are refused") {
  Tensor<float> a(xt::xarray<float>{1}, true);
  CHECK_THROWS_AS(nn::Adam<float>({{"a", a}, {"a", a}}), std::invalid_argument);
  CHECK_THROWS_AS(nn::Adam<float>({{"a", a}}, 1e-3, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(nn::SGD<float>({{"a", a}}, 0.1, 0.0, 0.0, true), std::invalid_argument);
  CHECK_THROWS_AS(nn::SGD<float>({{"a", a}}, -0.1), std::invalid_argument);
}

TEST_CASE("optimizer load_state lists every problem and changes nothing") {
  Tensor<float> a(xt::xarray<float>{1, 2}, true), b(xt::xarray<float>{{1, 2}, {3, 4}}, true);
  nn::Adam<float> opt({{"a", a}, {"b", b}});
  nn::NamedValues bad;
  bad.emplace_back("adam.exp_avg.a", xt::xarray<float>{0, 0});  // exp_avg_sq.a, param_step.a missing
  bad.emplace_back("adam.exp_avg.b", xt::xarray<float>{0, 0});  // wrong shape
  bad.emplace_back("adam.exp_avg_sq.b", xt::xarray<std::int64_t>{{0, 0}, {0, 0}});  // wrong dtype
  bad.emplace_back("adam.param_step.b", xt::xarray<std::int64_t>(std::int64_t(3)));
  bad.emplace_back("adam.exp_avg.c", xt::xarray<float>{0});  // no such parameter
  bad.emplace_back("sgd.momentum_buffer.a", xt::xarray<float>{0, 0});  // another optimizer's
  try {
    opt.load_state(bad, "ckpt.safetensors");
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find("ckpt.safetensors") != std::string::npos);
    for (const char* name : {"adam.step", "adam.exp_avg_sq.a", "adam.param_step.a", "adam.exp_avg.b",
                             "adam.exp_avg_sq.b", "adam.exp_avg.c", "sgd.momentum_buffer.a"})
      CHECK(msg.find(name) != std::string::npos);
  }
  CHECK(opt.step_count() == 0);
  CHECK(opt.state().size() == 1);
}

TEST_CASE("clip_grad_norm follows torch.nn.utils.clip_grad_norm_") {
  Tensor<float> a(xt::zeros<float>({2}), true), b(xt::zeros<float>({2, 2}), true), c(xt::zeros<float>({3}), true);
  a.accumulate_grad(xt::xarray<float>{3, -4});
  b.accumulate_grad(xt::xarray<float>{{1, 2}, {-2, 0.5}});
  // Reference: /usr/bin/python3, torch 1.13: clip_grad_norm_([a, b], 2.0) with those grads.
  const double norm = nn::clip_grad_norm<float>({a, b, c}, 2.0);  // c has no gradient: skipped
  CHECK(norm == doctest::Approx(5.852349758148193).epsilon(1e-7));
  const std::vector<double> want = {1.0252290964126587, -1.3669720888137817, 0.34174302220344543, 0.6834860444068909,
                                    -0.6834860444068909, 0.17087151110172272};
  std::vector<double> got(a.grad().begin(), a.grad().end());
  got.insert(got.end(), b.grad().begin(), b.grad().end());
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(std::abs(got[i] - want[i]) < 1e-6);
  CHECK_FALSE(c.has_grad());
  // Below the threshold nothing changes.
  const xt::xarray<float> before = a.grad();
  CHECK(nn::clip_grad_norm<float>(nn::Named<float>{{"a", a}}, 100.0) ==
        doctest::Approx(std::hypot(want[0], want[1])).epsilon(1e-6));
  CHECK(a.grad() == before);
}

TEST_CASE("learning-rate schedule: the reference's warmup, then cosine decay to 0 at the end") {
  // Without an end: lr(step) = base * min(1, (step + 1) / warmup), as the reference.
  nn::LearningRateSchedule w{1e-3, 200};
  CHECK(w.lr(0) == doctest::Approx(1e-3 / 200));
  CHECK(w.lr(99) == doctest::Approx(0.5e-3));
  CHECK(w.lr(199) == 1e-3);
  CHECK(w.lr(5000) == 1e-3);
  CHECK(nn::LearningRateSchedule{0.1, 0}.lr(0) == 0.1);

  // Warmup over 100 steps, then half a cosine over the 900 steps to the end.
  nn::LearningRateSchedule c{2e-3, 100, 0, 1000};
  CHECK(c.lr(0) == doctest::Approx(2e-5));
  CHECK(c.lr(49) == doctest::Approx(1e-3));
  CHECK(c.lr(99) == doctest::Approx(2e-3));       // the peak, at the end of the warmup
  CHECK(c.lr(100) == doctest::Approx(2e-3));
  CHECK(c.lr(550) == doctest::Approx(1e-3));      // half-way through the decay
  CHECK(c.lr(325) == doctest::Approx(1e-3 * (1 + std::cos(M_PI / 4))));
  CHECK(c.lr(999) == doctest::Approx(1e-3 * (1 + std::cos(M_PI * 899 / 900))));
  CHECK(c.lr(999) > 0);
  CHECK(c.lr(1000) == 0);
  CHECK(c.lr(5000) == 0);
  for (std::int64_t k = 100; k < 1000; ++k) CHECK(c.lr(k + 1) <= c.lr(k));

  // A second segment (a resumed run given a longer budget) warms up again from its start.
  nn::LearningRateSchedule again{2e-3, 100, 1000, 3000};
  CHECK(again.lr(1000) == doctest::Approx(2e-5));
  CHECK(again.lr(1099) == doctest::Approx(2e-3));
  CHECK(again.lr(2050) == doctest::Approx(1e-3));
  CHECK(again.lr(3000) == 0);
}

TEST_CASE("spike clipping: only a norm far above the running average is cut, to that threshold") {
  Tensor<float> a(xt::xarray<float>{1, 2}, true);
  auto set_grad = [&](float scale) {
    a.zero_grad();
    a.accumulate_grad(xt::xarray<float>{3 * scale, 4 * scale});  // norm 5 * scale
  };
  nn::SpikeClipper clip{4.0, 0.5};
  const nn::Named<float> params{{"a", a}};
  set_grad(1);
  CHECK(clip.clip(params) == doctest::Approx(5));  // starts the average at 5
  CHECK(clip.average == doctest::Approx(5));
  set_grad(3);                                      // 15 < 4 * 5: kept as it is
  CHECK(clip.clip(params) == doctest::Approx(15));
  CHECK(a.grad()(1) == doctest::Approx(12));
  CHECK(clip.average == doctest::Approx(10));
  CHECK(clip.clipped == 0);
  set_grad(100);                                    // 500 > 4 * 10: cut to norm 40
  CHECK(clip.clip(params) == doctest::Approx(500));
  CHECK(std::hypot(a.grad()(0), a.grad()(1)) == doctest::Approx(40).epsilon(1e-5));
  CHECK(clip.clipped == 1);
  CHECK(clip.average == doctest::Approx(25));       // averaged with the cut norm, not the spike
  set_grad(NAN);                                    // not finite: returned, the average untouched
  CHECK(std::isnan(clip.clip(params)));
  CHECK(clip.average == doctest::Approx(25));
}

TEST_CASE("an MLP learns y = sin(x1) + x2^2 with Adam") {
  manual_seed(7);
  const std::size_t n = 256;
  const xt::xarray<float> x = uniform<float>({n, 2}, -2, 2);
  xt::xarray<float> y = xt::zeros<float>({n, std::size_t(1)});
  for (std::size_t i = 0; i < n; ++i) y(i, 0) = std::sin(x(i, 0)) + x(i, 1) * x(i, 1);
  const Tensor<float> xt_(x), yt(y);
  auto net = mlp<float>(32);
  nn::Adam<float> opt(net->named_parameters(), 1e-2);
  auto loss_now = [&] {
    Tensor<float> d = net->forward(xt_) - yt;
    return mean(d * d);
  };
  const float initial = loss_now().item();
  float loss = initial;
  for (int step = 0; step < 1000; ++step) {
    opt.zero_grad();
    Tensor<float> l = loss_now();
    l.backward();
    opt.step();
    loss = l.item();
  }
  MESSAGE("MSE " << initial << " -> " << loss << " after 1000 Adam steps");
  CHECK(initial > 1.0f);
  CHECK(loss < 2e-3f);  // measured 2.7e-4 (seed 7)
}
