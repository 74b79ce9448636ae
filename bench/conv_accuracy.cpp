// How accurate conv2d is in float32, per algorithm: values and gradients against the same
// conv in float64 (max error / max |value|), 8 images of 64 -> 64 channels, 3x3, padding 1.
//
//   conv_accuracy          one line per image size and algorithm
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "autograd/autograd.hpp"
#include "autograd/conv.hpp"
#include "autograd/random.hpp"

using namespace flowgrad;

namespace {

template <class A, class B>
double relative_error(const A& got, const B& ref) {
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, std::abs(double(got.data()[i]) - double(ref.data()[i])));
    scale = std::max(scale, std::abs(double(ref.data()[i])));
  }
  return err / scale;
}

// y, dx, dw of sum(conv2d(x, w) * gy) in T.
template <class T>
std::array<xt::xarray<T>, 3> run(const xt::xarray<double>& x0, const xt::xarray<double>& w0,
                                 const xt::xarray<double>& gy) {
  Tensor<T> x{xt::xarray<T>(x0)}, w{xt::xarray<T>(w0)};
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  auto y = conv2d(x, w, {}, 1, 1);
  sum(mul(y, xt::xarray<T>(gy))).backward();
  return {y.value(), x.grad(), w.grad()};
}

}  // namespace

int main() {
  const std::pair<ConvAlgorithm, const char*> algorithms[] = {
      {ConvAlgorithm::im2col, "im2col"},
      {ConvAlgorithm::winograd_2x2, "winograd-2x2"},
      {ConvAlgorithm::fastest, "fastest (F(4x4) on 16+ wide)"}};
  for (std::size_t size : {28, 14}) {
    manual_seed(size);
    const auto x = uniform<double>({8, 64, size, size}, -1, 1);
    const auto w = uniform<double>({64, 64, 3, 3}, -1, 1);
    const auto gy = uniform<double>({8, 64, size, size}, -1, 1);
    for (const auto& [algorithm, name] : algorithms) {
      set_conv_algorithm(algorithm);
      const auto ref = run<double>(x, w, gy);
      const auto got = run<float>(x, w, gy);
      std::printf("%zux%zu %-30s y %.1e  dx %.1e  dw %.1e\n", size, size, name,
                  relative_error(got[0], ref[0]), relative_error(got[1], ref[1]),
                  relative_error(got[2], ref[2]));
    }
  }
}
