// Variational dequantization (flows/dequantization.hpp): q(u | pixels) is a normalised
// density on the unit cube whose forward and inverse agree, whose log q is log N(eps) minus
// the log-det of noise -> u, whose gradients are right, and whose bound
//   E_q[log p((k + u) / 256) - D ln 256 - log q(u | k)]
// stays below the discrete log-likelihood log P(k) and below -H on average over a toy
// distribution, closer than uniform noise once q is trained. All in float64 on tiny
// images, with checkerboard masks and (config.squeeze) channel masks after a squeeze.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.hpp"
#include "flow_checks.hpp"
#include "flows/dequantization.hpp"
#include "flows/linalg.hpp"
#include "nn/optim.hpp"

using namespace flowgrad;
using namespace flow_checks;
using In = std::vector<Tensor<double>>;

namespace {

const double kLn256 = std::log(256.0);
const double kLog2Pi = std::log(2 * M_PI);

flows::DequantizerConfig tiny(std::size_t height, std::size_t width, std::size_t couplings, bool squeeze = false) {
  flows::DequantizerConfig c;
  c.channels = 1, c.height = height, c.width = width, c.hidden = 4, c.couplings = couplings, c.squeeze = squeeze;
  return c;
}

// Whole pixel values in [lo, hi].
Arr random_pixels(const Shape& shape, unsigned seed, int lo = 0, int hi = 255) {
  Arr a = rand_uniform(shape, seed, lo, hi + 1);
  for (auto& v : a) v = std::floor(v);
  return a;
}

// One image (1, 1, 1, W) of these values.
Arr image(const std::vector<double>& values) {
  Arr a = Arr::from_shape({1, 1, 1, values.size()});
  std::copy(values.begin(), values.end(), a.begin());
  return a;
}

// B copies of one image (1, C, H, W) -> (B, C, H, W).
Arr repeat(const Arr& one, std::size_t b) {
  Shape s = to_shape(one.shape());
  s[0] = b;
  Arr out = Arr::from_shape(s);
  const std::size_t d = one.size();
  for (std::size_t i = 0; i < out.size(); ++i) out.data()[i] = one.data()[i % d];
  return out;
}

// The noise u = 256 x - pixels that forward drew.
Arr u_of(const flows::Dequantized<double>& dq, const Arr& pixels) {
  return Arr(dq.x.value() * 256.0 - pixels);
}

// log sigmoid'(h) = log sigmoid(h) + log sigmoid(-h), without overflow.
double log_sigmoid_derivative(double h) { return -std::abs(h) - 2 * std::log1p(std::exp(-std::abs(h))); }

double logsumexp(const std::vector<double>& v) {
  double top = -INFINITY, total = 0;
  for (double x : v) top = std::max(top, x);
  for (double x : v) total += std::exp(x - top);
  return top + std::log(total);
}

// A model density p(y) on [0, 1)^D, written with tape ops: (B, 1, H, W) -> (B,).
using LogDensity = std::function<Tensor<double>(const Tensor<double>&)>;

// log P(k) = log of the integral over the bin of p((k + u) / 256) 256^-D du, and uniform
// noise's bound E_u[log p((k + u) / 256)] - D ln 256: midpoint rule, n points per axis
// (D = 1 or 2), for one image k (1, 1, H, W).
struct BinIntegrals {
  double log_P, uniform_bound;
};
BinIntegrals integrate_bin(const LogDensity& log_p, const Arr& k, std::size_t n) {
  const std::size_t d = k.size();
  const std::size_t points = d == 1 ? n : n * n;
  Arr y = repeat(k, points);
  for (std::size_t i = 0; i < points; ++i)
    for (std::size_t j = 0; j < d; ++j) {
      const std::size_t along = j == 0 ? i % n : i / n;
      y.data()[i * d + j] = (y.data()[i * d + j] + (double(along) + 0.5) / double(n)) / 256.0;
    }
  NoGrad no_grad;
  const Arr lp = log_p(Tensor<double>(y)).value();
  const std::vector<double> values(lp.begin(), lp.end());
  double mean = 0;
  for (double v : values) mean += v / double(points);
  return {logsumexp(values) - std::log(double(points)) - double(d) * kLn256, mean - double(d) * kLn256};
}

// The bound E_q[log p(x) - D ln 256 - log q] for one image k, by n noise draws, with its
// standard error.
struct Estimate {
  double mean, standard_error;
};
Estimate estimate_bound(flows::VariationalDequantizer<double>& dq, const LogDensity& log_p, const Arr& k,
                        std::size_t n, unsigned seed) {
  NoGrad no_grad;
  const Arr pixels = repeat(k, n);
  const auto r = dq.forward(pixels, randn(to_shape(pixels.shape()), seed));
  const Tensor<double> log_px = log_p(r.x);
  const Arr f = log_px.value() - double(k.size()) * kLn256 - r.log_q.value();
  double mean = 0, square = 0;
  for (double v : f) mean += v / double(n), square += v * v / double(n);
  return {mean, std::sqrt(std::max(0.0, square - mean * mean) / double(n))};
}

// Adam on -(the bound), the images `ks` (each (1, 1, H, W)) repeated `each` times a step,
// fresh noise every step: q learns each k's shape of p inside its bin.
void train_q(flows::VariationalDequantizer<double>& dq, const LogDensity& log_p, const std::vector<Arr>& ks,
             const std::vector<std::size_t>& each, int steps, unsigned seed) {
  std::size_t total = 0;
  for (std::size_t n : each) total += n;
  Shape shape = to_shape(ks[0].shape());
  shape[0] = total;
  Arr pixels = Arr::from_shape(shape);
  double* at = pixels.data();
  for (std::size_t i = 0; i < ks.size(); ++i)
    for (std::size_t j = 0; j < each[i]; ++j)
      for (double v : ks[i]) *at++ = v;
  nn::Adam<double> adam(dq.named_parameters(), 1e-2);
  Generator rng(seed);
  for (int step = 0; step < steps; ++step) {
    const auto r = dq.forward(pixels, normal<double>(to_shape(pixels.shape()), 0.0, 1.0, rng));
    const Tensor<double> loss = -mean(log_p(r.x) - r.log_q);  // the constant D ln 256 left out
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
}

}  // namespace

TEST_CASE("dequantization: forward's log q is log_q's at the u it drew, and x stays in its pixel's bin") {
  for (bool squeeze : {false, true}) {  // checkerboard masks, or channel masks after a squeeze
    CAPTURE(squeeze);
    manual_seed(900);
    flows::VariationalDequantizer<double> dq(tiny(2, 2, 4, squeeze));
    perturb_parameters(dq, 0.2, 901);  // the couplings' last convs start at zero
    Arr pixels = random_pixels({6, 1, 2, 2}, 902);
    pixels(0, 0, 0, 0) = 0, pixels(1, 0, 1, 1) = 255;  // the ends of the range too
    const Arr noise = randn({6, 1, 2, 2}, 903);
    const auto r = dq.forward(pixels, noise);
    REQUIRE(r.x.shape() == Shape{6, 1, 2, 2});
    REQUIRE(r.log_q.shape() == Shape{6});
    const Arr x = r.x.value();
    for (std::size_t i = 0; i < x.size(); ++i) {
      CHECK(x.data()[i] >= pixels.data()[i] / 256);
      CHECK(x.data()[i] <= (pixels.data()[i] + 1) / 256);
    }
    const Arr u = u_of(r, pixels);
    CHECK(xt::amin(u)() > 0.0);
    CHECK(xt::amax(u)() < 1.0);
    const Arr back = dq.log_q(pixels, Tensor<double>(u)).value();
    const double error = max_abs_diff(back, r.log_q.value());
    CAPTURE(error);
    CHECK(error < 1e-9);
    // The perturbed couplings matter: log q is not the starting logistic-normal's.
    manual_seed(900);
    flows::VariationalDequantizer<double> start(tiny(2, 2, 4, squeeze));
    CHECK(max_abs_diff(start.log_q(pixels, Tensor<double>(u)).value(), back) > 1e-2);
  }
}

TEST_CASE("dequantization: log q = log N(eps) - log|det du/deps|, the Jacobian by central differences") {
  for (bool squeeze : {false, true}) {
    CAPTURE(squeeze);
    manual_seed(910);
    flows::VariationalDequantizer<double> dq(tiny(2, 2, 4, squeeze));
    perturb_parameters(dq, 0.2, 911);
    const std::size_t batch = 3, d = 4;
    const Arr pixels = random_pixels({batch, 1, 2, 2}, 912);
    const Arr noise = randn({batch, 1, 2, 2}, 913);
    const Arr log_q = dq.forward(pixels, noise).log_q.value();
    // Each example is independent, so one nudge of value j in every example gives column j.
    const double step = 1e-4;
    std::vector<Arr> jacobian(batch, Arr(xt::zeros<double>({d, d})));
    for (std::size_t j = 0; j < d; ++j) {
      Arr up = noise, down = noise;
      for (std::size_t b = 0; b < batch; ++b) up.data()[b * d + j] += step, down.data()[b * d + j] -= step;
      const Arr u_up = u_of(dq.forward(pixels, up), pixels), u_down = u_of(dq.forward(pixels, down), pixels);
      for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t i = 0; i < d; ++i)
          jacobian[b](i, j) = (u_up.data()[b * d + i] - u_down.data()[b * d + i]) / (2 * step);
    }
    for (std::size_t b = 0; b < batch; ++b) {
      double log_normal = -0.5 * double(d) * kLog2Pi;
      for (std::size_t i = 0; i < d; ++i) log_normal -= 0.5 * noise.data()[b * d + i] * noise.data()[b * d + i];
      const double want = log_normal - flows::slogdet(jacobian[b]).logabs;
      const double got = log_q(b);
      CAPTURE(b);
      CAPTURE(want);
      CAPTURE(got);
      CHECK(std::abs(got - want) < 1e-6);
    }
  }
}

TEST_CASE("dequantization: q(u | pixels) integrates to 1 over the unit square and the unit interval") {
  // Midpoint rule in logit space h = log u - log(1 - u): the integrand q(sigmoid(h))
  // sigmoid'(h) is smooth and decays at both ends, where q itself would pile up.
  auto integrate = [](flows::VariationalDequantizer<double>& dq, const Arr& k, double half_width, std::size_t n) {
    const std::size_t d = k.size(), points = d == 1 ? n : n * n;
    const double dh = 2 * half_width / double(n);
    Arr u = Arr::from_shape(to_shape(repeat(k, points).shape()));
    std::vector<double> log_jacobian(points, 0.0);
    for (std::size_t i = 0; i < points; ++i)
      for (std::size_t j = 0; j < d; ++j) {
        const double h = -half_width + (double((j == 0 ? i % n : i / n)) + 0.5) * dh;
        u.data()[i * d + j] = 1 / (1 + std::exp(-h));
        log_jacobian[i] += log_sigmoid_derivative(h);
      }
    NoGrad no_grad;
    const Arr log_q = dq.log_q(repeat(k, points), Tensor<double>(u)).value();
    double total = 0;
    for (std::size_t i = 0; i < points; ++i) total += std::exp(log_q(i) + log_jacobian[i]) * std::pow(dh, double(d));
    return total;
  };

  manual_seed(920);
  flows::VariationalDequantizer<double> square(tiny(1, 2, 4));
  perturb_parameters(square, 0.2, 921);
  for (const Arr& k : {image({3.0, 250.0}), image({128.0, 129.0})}) {
    const double integral = integrate(square, k, 20.0, 400);
    CAPTURE(integral);
    MESSAGE("D = 2, pixels (", k(0, 0, 0, 0), ", ", k(0, 0, 0, 1), "): integral of q - 1 = ", integral - 1);
    CHECK(std::abs(integral - 1) < 1e-3);
  }

  // D = 1: coupling 0 (parity 0) passes the lone value unchanged; coupling 1 maps it.
  manual_seed(930);
  flows::VariationalDequantizer<double> line(tiny(1, 1, 2));
  perturb_parameters(line, 0.3, 931);
  const Arr k = image({77.0});
  const Arr u = image({0.3});
  const double before = line.log_q(k, Tensor<double>(u)).value()(0);
  for (auto& named : line.named_parameters())
    if (named.first.rfind("couplings.0.", 0) == 0)
      for (auto& v : named.second.value()) v += 0.5;
  CHECK(line.log_q(k, Tensor<double>(u)).value()(0) == before);
  const double integral = integrate(line, k, 30.0, 6000);
  CAPTURE(integral);
  MESSAGE("D = 1, pixel 77: integral of q - 1 = ", integral - 1);
  CHECK(std::abs(integral - 1) < 1e-3);
  for (auto& named : line.named_parameters())
    if (named.first.rfind("couplings.1.", 0) == 0)
      for (auto& v : named.second.value()) v += 0.1;
  CHECK(std::abs(line.log_q(k, Tensor<double>(u)).value()(0) - before) > 1e-3);
}

TEST_CASE("dequantization: after a squeeze q(u | pixels) still integrates to 1 (D = 4, importance sampling)") {
  // A grid in 4-D is too dear. The logits h = log u - log(1 - u) have the density
  // q_h(h) = q(sigmoid(h)) prod sigmoid'(h), and E over h ~ r of q_h(h) / r(h) is its
  // integral for any r that covers it: here a Gaussian 1.5 times as wide as q's own logits.
  manual_seed(935);
  flows::VariationalDequantizer<double> dq(tiny(2, 2, 4, true));
  perturb_parameters(dq, 0.2, 936);
  const Arr pixels = random_pixels({1, 1, 2, 2}, 937);
  const std::size_t n = 100000, d = 4;
  NoGrad no_grad;
  std::vector<double> centre(d, 0.0), spread(d, 0.0);
  {
    const Arr u = u_of(dq.forward(repeat(pixels, 10000), randn({10000, 1, 2, 2}, 938)), repeat(pixels, 10000));
    for (std::size_t j = 0; j < d; ++j) {
      double m = 0, m2 = 0;
      for (std::size_t i = 0; i < 10000; ++i) {
        const double v = std::log(u.data()[i * d + j]) - std::log1p(-u.data()[i * d + j]);
        m += v / 1e4, m2 += v * v / 1e4;
      }
      centre[j] = m, spread[j] = 1.5 * std::sqrt(m2 - m * m);
    }
  }
  const Arr z = randn({n, 1, 2, 2}, 939);
  Arr u = z;
  std::vector<double> log_weight(n, 0.0);  // log prod sigmoid'(h) - log r(h)
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) {
      const double e = z.data()[i * d + j], h = centre[j] + spread[j] * e;
      u.data()[i * d + j] = 1 / (1 + std::exp(-h));
      log_weight[i] += log_sigmoid_derivative(h) + 0.5 * e * e + std::log(spread[j]) + 0.5 * kLog2Pi;
    }
  const Arr log_q = dq.log_q(repeat(pixels, n), Tensor<double>(u)).value();
  double mean = 0, square = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double w = std::exp(log_q(i) + log_weight[i]);
    mean += w / double(n), square += w * w / double(n);
  }
  const double standard_error = std::sqrt((square - mean * mean) / double(n));
  MESSAGE("D = 4, squeezed: integral of q - 1 = ", mean - 1, " +- ", standard_error);
  CAPTURE(mean);
  CAPTURE(standard_error);
  CHECK(standard_error < 0.01);
  CHECK(std::abs(mean - 1) < 4 * standard_error);
}

TEST_CASE("dequantization: float64 gradcheck of x and log q in every parameter, and of log_q in u") {
  for (bool squeeze : {false, true}) {
    CAPTURE(squeeze);
    manual_seed(940);
    flows::VariationalDequantizer<double> dq(tiny(2, 2, 2, squeeze));
    perturb_parameters(dq, 0.2, 941);
    const Arr pixels = random_pixels({2, 1, 2, 2}, 942);
    const Arr noise = randn({2, 1, 2, 2}, 943);
    const auto params = dq.named_parameters();
    const auto forward = gradcheck(
        [&](const In&) {
          const auto r = dq.forward(pixels, noise);
          return std::vector<Tensor<double>>{r.x, r.log_q};
        },
        {}, params);
    CHECK_MESSAGE(forward.ok, forward);
    const Tensor<double> u(rand_uniform({2, 1, 2, 2}, 944, 0.05, 0.95), true);
    const auto inverse = gradcheck([&](const In& in) { return dq.log_q(pixels, in[0]); }, {u}, params);
    CHECK_MESSAGE(inverse.ok, inverse);
  }
}

TEST_CASE("dequantization: a trained bound stays below log P(k) per bin, and beats uniform noise") {
  // p: a correlated 2-D Gaussian on a 1x1x2 image, std 0.75 bins, centred on the corner
  // of bins 127 and 128, so p changes inside each bin, by 3x (bin (128, 128)) to 1200x
  // (bin (129, 127)). One q per bin, trained on it alone: the tighter the bound, the
  // smaller an error in log q it can show.
  const double centre = 128.0, sigma = 0.75, rho = 0.5;
  const Arr first = image({1.0, 0.0}), second = image({0.0, 1.0});
  const LogDensity log_p = [&](const Tensor<double>& y) {
    const Tensor<double> z = (y * 256.0 - centre) / sigma;  // in units of sigma
    const Tensor<double> z1 = sum(mul(z, first), {1, 2, 3}), z2 = sum(mul(z, second), {1, 2, 3});
    const Tensor<double> w2 = (z2 - z1 * rho) / std::sqrt(1 - rho * rho);
    return (z1 * z1 + w2 * w2) * -0.5 + (2 * std::log(256.0 / sigma) - kLog2Pi - 0.5 * std::log(1 - rho * rho));
  };
  const std::vector<Arr> ks{image({128.0, 128.0}), image({127.0, 128.0}), image({129.0, 127.0}),
                            image({129.0, 129.0})};
  for (std::size_t i = 0; i < ks.size(); ++i) {
    manual_seed(950 + i);
    flows::VariationalDequantizer<double> dq(tiny(1, 2, 4));
    train_q(dq, log_p, {ks[i]}, {64}, 300, 960 + i);
    const auto exact = integrate_bin(log_p, ks[i], 300);
    const auto bound = estimate_bound(dq, log_p, ks[i], 20000, 970 + i);
    const double log_P = exact.log_P, uniform = exact.uniform_bound, variational = bound.mean,
                 standard_error = bound.standard_error;
    MESSAGE("pixels (", ks[i](0, 0, 0, 0), ", ", ks[i](0, 0, 0, 1), "): log P ", log_P, ", variational bound ",
            variational, " +- ", standard_error, " (gap ", log_P - variational, "), uniform bound ", uniform,
            " (gap ", log_P - uniform, ")");
    CAPTURE(i);
    CAPTURE(log_P);
    CAPTURE(variational);
    CAPTURE(standard_error);
    CAPTURE(uniform);
    CHECK(variational <= log_P + 3 * standard_error + 1e-9);
    CHECK(uniform < log_P);  // Jensen, for the integration itself
    CHECK(log_P - variational < log_P - uniform);
  }
}

TEST_CASE("dequantization: on a toy distribution of known entropy the mean bound stays below -H") {
  // Pixels k in {100, ..., 103} with probabilities 0.1, 0.2, 0.3, 0.4 (D = 1); p(y) puts
  // a Gaussian of std 0.2 bins at each bin's centre with the same weights, so its log P
  // is within 0.01 of log pi: a log q that is off has room to lift the bound above -H.
  const std::vector<double> values{100, 101, 102, 103}, probs{0.1, 0.2, 0.3, 0.4};
  const double sigma = 0.2;
  double entropy = 0;
  for (double p : probs) entropy -= p * std::log(p);
  const LogDensity log_p = [&](const Tensor<double>& y) {
    const Tensor<double> t = y * 256.0;
    Tensor<double> mixture;
    for (std::size_t c = 0; c < values.size(); ++c) {
      const Tensor<double> z = (t - (values[c] + 0.5)) / sigma;
      const Tensor<double> term = exp(z * z * -0.5) * probs[c];
      mixture = c ? mixture + term : term;
    }
    return flows::sum_per_example(log(mixture)) + (std::log(256.0 / sigma) - 0.5 * kLog2Pi);
  };
  std::vector<Arr> ks;
  std::vector<std::size_t> each;
  for (std::size_t c = 0; c < values.size(); ++c) {
    ks.push_back(image({values[c]}));
    each.push_back(std::size_t(std::lround(256 * probs[c])));  // a minibatch drawn in proportion
  }
  manual_seed(960);
  flows::VariationalDequantizer<double> dq(tiny(1, 1, 2));
  train_q(dq, log_p, ks, each, 300, 961);
  double log_P = 0, uniform = 0, variational = 0, variance = 0;
  for (std::size_t c = 0; c < values.size(); ++c) {
    const auto exact = integrate_bin(log_p, ks[c], 4000);
    const auto bound = estimate_bound(dq, log_p, ks[c], 20000, 962 + c);
    log_P += probs[c] * exact.log_P, uniform += probs[c] * exact.uniform_bound;
    variational += probs[c] * bound.mean;
    variance += probs[c] * probs[c] * bound.standard_error * bound.standard_error;
  }
  const double standard_error = std::sqrt(variance);
  MESSAGE("toy distribution: -H ", -entropy, ", E log P ", log_P, ", variational bound ", variational, " +- ",
          standard_error, " (", -entropy - variational, " below -H), uniform bound ", uniform, " (",
          -entropy - uniform, " below -H)");
  CAPTURE(entropy);
  CAPTURE(log_P);
  CAPTURE(variational);
  CAPTURE(standard_error);
  CAPTURE(uniform);
  CHECK(log_P <= -entropy);  // Gibbs, for the set-up itself
  CHECK(variational <= -entropy + 3 * standard_error);
  CHECK(variational <= log_P + 3 * standard_error);
  CHECK(-entropy - variational < -entropy - uniform);
}
