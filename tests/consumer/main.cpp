// A tiny app that uses flowgrad as a library: fits y = 3x - 1 by gradient descent.
#include <cstdio>

#include <autograd/autograd.hpp>

int main() {
  using namespace flowgrad;
  Tensor<double> w(xt::xarray<double>{0.0}, true), b(xt::xarray<double>{0.0}, true);
  Tensor<double> x(xt::xarray<double>{-1.0, 0.0, 1.0, 2.0});
  Tensor<double> y(xt::xarray<double>{-4.0, -1.0, 2.0, 5.0});
  for (int step = 0; step < 200; ++step) {
    auto loss = mean(pow(x * w + b - y, 2.0));
    loss.backward();
    w.value() -= 0.1 * w.grad();
    b.value() -= 0.1 * b.grad();
    w.zero_grad();
    b.zero_grad();
  }
  std::printf("w = %.3f, b = %.3f\n", w.item(), b.item());
  return 0;
}
