// What a parallel_for costs beyond its work: a job of 8 pieces of 5 us on 2 threads (20 us
// ideal, 40 us on one thread), after a serial gap of 0 us to 2 ms, as between a training
// step's ops. The pool's workers spin 1 ms before they sleep (autograd/parallel.cpp).
//
//   pool_roundtrip      prints one line per gap
#include <chrono>
#include <cstdio>

#include "autograd/parallel.hpp"

namespace {
using Clock = std::chrono::steady_clock;

void busy(double us) {
  const auto start = Clock::now();
  while (std::chrono::duration<double, std::micro>(Clock::now() - start).count() < us) {
  }
}
}  // namespace

int main() {
  flowgrad::set_num_threads(2);
  for (double gap : {0.0, 20.0, 200.0, 2000.0}) {
    const int calls = gap >= 2000 ? 300 : 3000;
    double total = 0;
    for (int c = 0; c < calls; ++c) {
      busy(gap);
      const auto start = Clock::now();
      flowgrad::parallel_for(0, 8, [](std::size_t) { busy(5); });
      total += std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    }
    std::printf("gap %6.0f us: parallel_for of 8 x 5 us pieces on 2 threads: %5.1f us a call (ideal 20)\n",
                gap, total / calls);
  }
}
