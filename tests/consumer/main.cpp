// A tiny app that uses flowgrad as a library: fits y = 3x - 1 with nn::Adam.
#include <cstdio>

#include <autograd/autograd.hpp>
#include <nn/optim.hpp>

int main() {
  using namespace flowgrad;
  Tensor<double> w(xt::xarray<double>{0.0}, true), b(xt::xarray<double>{0.0}, true);
  Tensor<double> x(xt::xarray<double>{-1.0, 0.0, 1.0, 2.0});
  Tensor<double> y(xt::xarray<double>{-4.0, -1.0, 2.0, 5.0});
  nn::Adam<double> adam({{"w", w}, {"b", b}}, 0.1);  // (name, tensor) pairs, as module.named_parameters()
  for (int step = 0; step < 1000; ++step) {
    auto loss = mean(pow(x * w + b - y, 2));
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  std::printf("w = %.3f, b = %.3f\n", w.item(), b.item());
  return 0;
}
