// Pictures to learn from: Glow-style steps (ActNorm, invertible 1x1 conv, affine coupling)
// fitted to the classic 2-D densities of the flow papers, in seconds on one core.
//   build/apps/density2d [STEPS] [OUT.png]     (default 1500 steps, density2d.png)
// One row per density: the data, the learned density exp(log p) on a grid, samples, and
// the data mapped into latent space (which should look like N(0, I)). A point (x, y) is
// a 2-channel 1x1 image, so the image layers work on it unchanged.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.hpp"
#include "datasets/png.hpp"
#include "flows/actnorm.hpp"
#include "flows/coupling.hpp"
#include "flows/distributions.hpp"
#include "flows/glow.hpp"
#include "flows/invconv.hpp"
#include "nn/optim.hpp"

using namespace flowgrad;
using Points = xt::xarray<float>;  // (N, 2, 1, 1)

Points draw(const std::string& name, std::size_t n, Generator& rng) {
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(0, 1);
  Points p = Points::from_shape({n, 2, 1, 1});
  for (std::size_t i = 0; i < n; ++i) {
    float x = 0, y = 0;
    if (name == "two moons") {  // two interleaved half circles
      const float t = float(M_PI) * uniform(rng);
      const bool upper = uniform(rng) < 0.5f;
      x = upper ? std::cos(t) : 1 - std::cos(t), y = upper ? std::sin(t) : 0.5f - std::sin(t);
      x = 1.5f * (x - 0.5f) + 0.08f * normal(rng), y = 1.5f * (y - 0.25f) + 0.08f * normal(rng);
    } else if (name == "eight gaussians") {
      const float a = float(M_PI) / 4 * float(int(8 * uniform(rng)));
      x = 2.5f * std::cos(a) + 0.2f * normal(rng), y = 2.5f * std::sin(a) + 0.2f * normal(rng);
    } else if (name == "checkerboard") {  // 8 squares of a 4x4 board on [-2, 2]^2
      x = 4 * uniform(rng) - 2, y = uniform(rng) - 2 + float(int(2 * uniform(rng))) * 2;
      y += float(int(std::floor(x)) % 2 != 0);
    } else {  // rings: three concentric circles
      const float r = 0.8f * float(1 + int(3 * uniform(rng))), a = 2 * float(M_PI) * uniform(rng);
      x = r * std::cos(a) + 0.08f * normal(rng), y = r * std::sin(a) + 0.08f * normal(rng);
    }
    p(i, 0, 0, 0) = x, p(i, 1, 0, 0) = y;
  }
  return p;
}

std::shared_ptr<flows::FlowSequence<float>> glow_2d(std::size_t steps, std::size_t hidden) {
  auto flow = std::make_shared<flows::FlowSequence<float>>();
  for (std::size_t k = 0; k < steps; ++k) {
    flow->push_back(std::make_shared<flows::ActNorm<float>>(2));
    flow->push_back(std::make_shared<flows::InvConv1x1LU<float>>(2));
    flow->push_back(std::make_shared<flows::GlowCoupling<float>>(flows::glow_coupling_net<float>(1, 2, hidden), true, 2.0));
  }
  return flow;
}

// A panel: a 2-D histogram of points (or values on the grid) over [-4, 4]^2, scaled to its maximum.
constexpr std::size_t kPanel = 160;
constexpr float kRange = 4;
std::vector<float> histogram(const Points& p) {
  std::vector<float> h(kPanel * kPanel, 0);
  for (std::size_t i = 0; i < p.shape()[0]; ++i) {
    const float col = (p(i, 0, 0, 0) + kRange) / (2 * kRange) * kPanel, row = (kRange - p(i, 1, 0, 0)) / (2 * kRange) * kPanel;
    if (col >= 0 && col < kPanel && row >= 0 && row < kPanel) h[std::size_t(row) * kPanel + std::size_t(col)] += 1;
  }
  return h;
}

void paint(xt::xarray<std::uint8_t>& image, std::size_t row, std::size_t column, const std::vector<float>& v) {
  float top = 0;
  for (float a : v) top = std::max(top, std::isfinite(a) ? a : 0.f);
  for (std::size_t i = 0; i < kPanel; ++i)
    for (std::size_t j = 0; j < kPanel; ++j) {
      const float t = top > 0 ? std::min(1.f, v[i * kPanel + j] / top) : 0;  // black, red, yellow, white
      const float rgb[3] = {std::min(1.f, 3 * t), std::clamp(3 * t - 1, 0.f, 1.f), std::clamp(3 * t - 2, 0.f, 1.f)};
      for (std::size_t c = 0; c < 3; ++c)
        image(row * (kPanel + 4) + i, column * (kPanel + 4) + j, c) = std::uint8_t(255 * rgb[c]);
    }
}

int main(int argc, char** argv) try {
  const long steps = argc > 1 ? std::atol(argv[1]) : 1500;
  const std::string out = argc > 2 ? argv[2] : "density2d.png";
  const std::vector<std::string> names{"two moons", "eight gaussians", "checkerboard", "rings"};
  xt::xarray<std::uint8_t> image = xt::zeros<std::uint8_t>({names.size() * (kPanel + 4), 4 * (kPanel + 4), std::size_t(3)});
  flows::StandardGaussian<float> prior;
  Generator rng(0);
  manual_seed(0);
  for (std::size_t d = 0; d < names.size(); ++d) {
    auto flow = glow_2d(8, 64);
    nn::Adam<float> adam(flow->named_parameters(), 3e-3);
    auto nll = [&](const Points& x) {  // -log p(x) = -(log N(f(x)) + log|det df/dx|), mean over the batch
      auto r = flow->forward(Tensor<float>(x));
      return -mean(prior.log_prob(r.y) + r.logdet);
    };
    const Points data = draw(names[d], 20000, rng);  // also held out: the fit's measure
    float before = 0;
    {
      NoGrad no_grad;
      before = nll(data).item();  // ActNorm's first call standardises: a Gaussian fit
    }
    for (long step = 1; step <= steps; ++step) {
      auto loss = nll(draw(names[d], 256, rng));
      adam.zero_grad();
      loss.backward();
      adam.set_lr(3e-3 * std::min(1.0, step / 100.0) * 0.5 * (1 + std::cos(M_PI * step / steps)));
      adam.step();
    }
    flow->eval();
    NoGrad no_grad;
    const float after = nll(data).item();
    Points grid = Points::from_shape({kPanel * kPanel, 2, 1, 1});
    for (std::size_t i = 0; i < kPanel; ++i)
      for (std::size_t j = 0; j < kPanel; ++j)  // cell centres, row 0 at the top
        grid(i * kPanel + j, 0, 0, 0) = -kRange + (j + 0.5f) * 2 * kRange / kPanel,
                          grid(i * kPanel + j, 1, 0, 0) = kRange - (i + 0.5f) * 2 * kRange / kPanel;
    auto on_grid = flow->forward(Tensor<float>(grid));
    xt::xarray<float> density = xt::exp(prior.log_prob(on_grid.y).value() + on_grid.logdet.value());
    const double cell = std::pow(2 * kRange / kPanel, 2);
    const Points samples = flow->inverse(prior.sample({20000, 2, 1, 1})).y.value();
    paint(image, d, 0, histogram(data));
    paint(image, d, 1, std::vector<float>(density.begin(), density.end()));
    paint(image, d, 2, histogram(samples));
    paint(image, d, 3, histogram(flow->forward(Tensor<float>(data)).y.value()));
    std::printf("%-15s  -log p of 20,000 points: %.3f at the start, %.3f after %ld steps (nats); "
                "integral of p over [-4, 4]^2: %.3f\n", names[d].c_str(), before, after, steps, xt::sum(density)() * cell);
  }
  data::write_png(out, image);
  std::printf("wrote %s: rows %s, %s, %s, %s; columns data, density, samples, data in latent space\n", out.c_str(),
              names[0].c_str(), names[1].c_str(), names[2].c_str(), names[3].c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "density2d: %s\n", e.what());
  return 1;
}
