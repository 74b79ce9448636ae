// The raw-loop kernels behind the ops (autograd/kernels.hpp) against xtensor's own
// broadcasting and reductions, on shapes that exercise axis merging, broadcasting on
// either side, and arrays big enough to be split over threads; plus the profiler and
// the allocator setting used by the bench.
#include <doctest/doctest.h>

#include <sys/resource.h>

#include <random>

#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xstrided_view.hpp>
#include <xtensor/xview.hpp>

#include "autograd/autograd.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/kernels.hpp"
#include "autograd/memory.hpp"
#include "autograd/parallel.hpp"
#include "autograd/profile.hpp"
#include "support.hpp"

using namespace flowgrad;
using In = std::vector<Tensor<double>>;

namespace {

template <class T>
xt::xarray<T> random_array(const Shape& shape, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n;
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  for (auto& v : a) v = T(n(rng));
  return a;
}

// The obvious reference for sum_to: xtensor's reduction over the broadcast axes.
template <class T>
xt::xarray<T> reference_sum_to(const xt::xarray<T>& g, const Shape& shape) {
  const Shape gs = to_shape(g.shape());
  const std::size_t lead = gs.size() - shape.size();
  std::vector<std::size_t> axes;
  for (std::size_t i = 0; i < gs.size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && gs[i] != 1)) axes.push_back(i);
  xt::xarray<T> s = axes.empty() ? xt::xarray<T>(g) : xt::xarray<T>(xt::sum(g, axes, xt::evaluation_strategy::immediate));
  s.reshape(shape);
  return s;
}

// Both ways of computing, at 1 and 2 threads.
template <class F>
void at_each_thread_count(F&& f) {
  const int before = num_threads();
  for (int n : {1, 2}) {
    set_num_threads(n);
    CAPTURE(n);
    f();
  }
  set_num_threads(before);
}

const std::vector<std::pair<Shape, Shape>> kPairs = {
    {{64, 32, 28, 28}, {1, 32, 1, 1}},  // per-channel scale, big: split over threads
    {{32, 1, 1}, {64, 32, 28, 28}},     // the same, broadcast on the left, rank padded
    {{64, 784}, {784}},                 // bias over a batch
    {{2, 3, 4}, {3, 1}},
    {{5, 1, 7}, {1, 6, 1}},             // both sides stretched
    {{300, 1}, {1, 400}},               // outer product shape, rows of 400
    {{4, 1, 3, 1, 2}, {1, 5, 1, 6, 1}},
    {{}, {3, 4}},                       // a 0-d operand
    {{128, 1024}, {128, 1024}},         // same shapes: the zip path
    {{1, 1}, {1}},
};

Shape broadcast(const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::size_t da = i + a.size() >= out.size() ? a[i + a.size() - out.size()] : 1;
    const std::size_t db = i + b.size() >= out.size() ? b[i + b.size() - out.size()] : 1;
    out[i] = std::max(da, db);
  }
  return out;
}

}  // namespace

TEST_CASE("broadcast_zip and sum_to agree with xtensor") {
  at_each_thread_count([] {
    unsigned seed = 1;
    for (const auto& shapes : kPairs) {
      const Shape& as = shapes.first;  // not a structured binding: clang 14 cannot capture one
      const Shape& bs = shapes.second;
      CAPTURE(shape_str(as));
      CAPTURE(shape_str(bs));
      const auto a = random_array<float>(as, seed++), b = random_array<float>(bs, seed++);
      const Shape out = broadcast(as, bs);
      const xt::xarray<float> want = a * b;
      const auto got = kernels::broadcast_zip(a, b, out, [](float x, float y) { return x * y; });
      REQUIRE(to_shape(got.shape()) == out);
      CHECK(got == want);  // one multiply per element either way: bitwise equal
      const auto g = random_array<float>(out, seed++);
      for (const Shape& s : {as, bs}) {
        const auto sum = kernels::sum_to(g, s);
        REQUIRE(to_shape(sum.shape()) == s);
        CHECK(xt::allclose(sum, reference_sum_to(g, s), 1e-4, 1e-4));
      }
      // The fused form: sum_to(g * other) without the product array.
      const xt::xarray<float> ga = kernels::reduce_to(g, xt::xarray<float>(xt::broadcast(b, out)), as,
                                                      [](float x, float y) { return x * y; });
      CHECK(xt::allclose(ga, reference_sum_to<float>(g * b, as), 1e-4, 1e-4));
    }
  });
}

TEST_CASE("broadcasting ops: values and gradients on big arrays at 1 and 2 threads") {
  at_each_thread_count([] {
    const Shape xs{16, 32, 14, 14}, ss{1, 32, 1, 1};
    Tensor<float> x(random_array<float>(xs, 11), true), s(random_array<float>(ss, 12), true);
    const auto w = random_array<float>(xs, 13);
    auto y = sum(mul(x * s + s, w));
    y.backward();
    // d/dx = s * w, d/ds = sum over (0, 2, 3) of (x + 1) * w.
    const xt::xarray<float> gx = xt::broadcast(s.value(), xs) * w;
    const xt::xarray<float> gs = reference_sum_to<float>((x.value() + 1.0f) * w, ss);
    CHECK(xt::allclose(x.grad(), gx, 1e-5, 1e-5));
    CHECK(xt::allclose(s.grad(), gs, 1e-3, 1e-3));
    const xt::xarray<float> terms = (x.value() * s.value() + s.value()) * w;
    CHECK(std::abs(y.item() - xt::sum(terms)()) <= 1e-5 * xt::sum(xt::abs(terms))());
  });
}

TEST_CASE("gradients through unusual broadcasts (float64 gradcheck)") {
  auto a = Tensor<double>(random_array<double>({4, 1, 3, 1, 2}, 21));
  auto b = Tensor<double>(random_array<double>({1, 5, 1, 6, 1}, 22));
  auto c = Tensor<double>(random_array<double>({6, 1}, 23) + 3.0);
  auto z = Tensor<double>(random_array<double>({}, 24));
  CHECK(gradcheck([](const In& t) { return t[0] * t[1] + t[0]; }, {a, b}));
  CHECK(gradcheck([](const In& t) { return t[0] - t[1] / t[2]; }, {a, b, c}));
  CHECK(gradcheck([](const In& t) { return t[1] / t[0]; }, {a, c}));
  CHECK(gradcheck([](const In& t) { return t[0] * t[1] - t[1]; }, {z, c}));
  CHECK(gradcheck([](const In& t) { return sum(t[0] * t[1], {1, 3}, true); }, {a, b}));
  CHECK(gradcheck([](const In& t) { return mean(t[0] + t[1], {0, 4}); }, {a, b}));
}

TEST_CASE("slice and concat on big arrays match xtensor's views, at 1 and 2 threads") {
  at_each_thread_count([] {
    const Shape s{8, 64, 20, 20};
    Tensor<float> x(random_array<float>(s, 31), true);
    auto parts = chunk(x, 2, 1);
    auto odd = slice(x, 1, 1, 64, 2);
    auto y = concat(std::vector<Tensor<float>>{parts[1], odd, parts[0]}, 1);
    xt::xstrided_slice_vector hi{xt::all(), xt::range(32, 64)}, lo{xt::all(), xt::range(0, 32)},
        odds{xt::all(), xt::range(1, 64, 2)};
    const xt::xarray<float> want = xt::concatenate(
        xt::xtuple(xt::strided_view(x.value(), hi), xt::strided_view(x.value(), odds), xt::strided_view(x.value(), lo)), 1);
    REQUIRE(y.shape() == to_shape(want.shape()));
    CHECK(y.value() == want);
    // Weights w on y: x's gradient is w's pieces put back, the odd channels counted twice.
    const auto w = random_array<float>(y.shape(), 32);
    sum(mul(y, w)).backward();
    xt::xarray<float> gx = xt::zeros<float>(s);
    xt::strided_view(gx, hi) += xt::view(w, xt::all(), xt::range(0, 32));
    xt::strided_view(gx, odds) += xt::view(w, xt::all(), xt::range(32, 64));
    xt::strided_view(gx, lo) += xt::view(w, xt::all(), xt::range(64, 96));
    CHECK(xt::allclose(x.grad(), gx));
  });
}

TEST_CASE("a gradient that passes through add is moved, not shared") {
  // x + x: both inputs are one tensor; the first gets a copy, the second the moved array.
  Tensor<double> x(random_array<double>({3, 4}, 41), true);
  auto y = sum(reshape(x + x, {4, 3}) + 1.0);
  y.backward();
  CHECK(x.grad() == xt::xarray<double>(xt::ones<double>({3, 4}) * 2.0));
  CHECK(gradcheck([](const In& t) { return reshape(t[0] + t[0] + 2.0, {12}); }, {x}));
}

TEST_CASE("relu keeps NaN like PyTorch and its gradient is zero there") {
  Tensor<float> x(xt::xarray<float>{-1.0f, 0.0f, 2.0f, std::nanf("")}, true);
  auto y = relu(x);
  CHECK(y.value()(0) == 0.0f);
  CHECK(y.value()(2) == 2.0f);
  CHECK(std::isnan(y.value()(3)));
  sum(mul(y, xt::xarray<float>{1.0f, 1.0f, 1.0f, 0.0f})).backward();
  CHECK(x.grad() == xt::xarray<float>{0.0f, 0.0f, 1.0f, 0.0f});
}

TEST_CASE("the profiler charges ops forward and backward") {
  profile::reset();
  profile::enable(true);
  Tensor<float> x(random_array<float>({64, 64}, 51), true);
  sum(relu(x) * 2.0f).backward();
  profile::enable(false);
  const std::string table = profile::report(1);
  CHECK(table.find("relu") != std::string::npos);
  CHECK(table.find("mul_scalar") != std::string::npos);
  CHECK(table.find("total") != std::string::npos);
  profile::reset();
  CHECK(profile::report(1).find("relu") == std::string::npos);
}

TEST_CASE("retain_freed_memory: a second round of the same allocations does not fault") {
#ifdef FLOWGRAD_UNDER_ASAN
  MESSAGE("skipped under AddressSanitizer: its own allocator ignores glibc's mallopt settings");
  return;
#endif
  REQUIRE(retain_freed_memory());
  auto faults = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
  };
  auto round = [] {  // 16 arrays of 8 MB, written, then freed
    std::vector<xt::xarray<float>> keep;
    for (int i = 0; i < 16; ++i) keep.push_back(xt::xarray<float>(xt::ones<float>({std::size_t(1) << 21})));
  };
  round();
  const auto before = faults();
  round();
  // 128 MB of fresh pages would be 32768 faults; a few hundred cover the test runner's own.
  CHECK(faults() - before < 1000);
}

TEST_CASE("a value only the graph points at, and no backward reads, is freed during forward") {
  const xt::xarray<double> v = random_array<double>({1000}, 61);
  Tensor<double> x(v, true);
  Tensor<double> h = x * 2.0;  // mul_scalar: its backward reads neither input nor output
  Tensor<double> e = exp(x);   // exp's backward reads its output
  Tensor<double> m = x + 1.0;  // read by the mul below, which keeps a handle to it
  std::weak_ptr<TensorImpl<double>> wh = h.impl_ptr(), we = e.impl_ptr(), wm = m.impl_ptr();
  auto loss = sum(relu(h) + e + m * m);
  h = e = m = Tensor<double>();
  CHECK(wh.lock()->value.size() == 0);   // freed: relu and add only need its gradient slot
  CHECK(we.lock()->value.size() == 1000);
  CHECK(wm.lock()->value.size() == 1000);
  loss.backward();
  const xt::xarray<double> want = xt::where(v > 0.0, 2.0, 0.0) + xt::exp(v) + 2.0 * (v + 1.0);
  CHECK(xt::allclose(x.grad(), want));
  CHECK(wh.expired());  // and the whole graph is gone after backward
  CHECK(we.expired());
}

TEST_CASE("a handle kept by the caller keeps its value, and a second backward still reports the freed graph") {
  Tensor<double> x(random_array<double>({10}, 62), true);
  Tensor<double> h = x * 3.0;
  auto y = sum(relu(h));
  CHECK(h.value().size() == 10);
  y.backward();
  CHECK(h.value().size() == 10);
  CHECK_THROWS_AS(y.backward(), std::logic_error);
}

TEST_CASE("elementwise chains on big arrays give the same bits at 1 and 2 threads") {
  const auto v = random_array<float>({8, 64, 32, 32}, 71);
  auto run = [&] {
    Tensor<float> x(v, true);
    auto y = sum(sigmoid(tanh(relu(x) * 0.5f) + exp(-abs(x))) * softplus(x) - log_sigmoid(x) / 3.0f);
    y.backward();
    return std::make_pair(y.item(), xt::xarray<float>(x.grad()));
  };
  const int before = num_threads();
  set_num_threads(1);
  const auto one = run();
  set_num_threads(2);
  const auto two = run();
  set_num_threads(before);
  CHECK(one.second == two.second);  // elementwise: no reordering of any sum
  CHECK(one.first == doctest::Approx(two.first).epsilon(1e-5));
}
