// conv2d against a direct loop and central differences; the thread pool under it.
#include <doctest/doctest.h>

#include "support.hpp"

#include <atomic>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

#include <xtensor/xview.hpp>

#include "autograd/autograd.hpp"
#include "autograd/conv.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/parallel.hpp"
#include "autograd/small_gemm.hpp"

using namespace flowgrad;
using In = std::vector<Tensor<double>>;

namespace {

using flowgrad::testing::rand_tensor;

// The definition, in double, one output at a time.
xt::xarray<double> direct_conv(const xt::xarray<float>& x, const xt::xarray<float>& w,
                               const xt::xarray<float>* b, std::size_t s, std::size_t p) {
  const std::size_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::size_t O = w.shape()[0], KH = w.shape()[2], KW = w.shape()[3];
  const std::size_t OH = (H + 2 * p - KH) / s + 1, OW = (W + 2 * p - KW) / s + 1;
  xt::xarray<double> y = xt::zeros<double>({N, O, OH, OW});
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < O; ++o)
      for (std::size_t oh = 0; oh < OH; ++oh)
        for (std::size_t ow = 0; ow < OW; ++ow) {
          double acc = b ? double((*b)(o)) : 0.0;
          for (std::size_t c = 0; c < C; ++c)
            for (std::size_t i = 0; i < KH; ++i)
              for (std::size_t j = 0; j < KW; ++j) {
                const long ih = long(oh * s + i) - long(p), iw = long(ow * s + j) - long(p);
                if (ih < 0 || iw < 0 || ih >= long(H) || iw >= long(W)) continue;
                acc += double(x(n, c, ih, iw)) * double(w(o, c, i, j));
              }
          y(n, o, oh, ow) = acc;
        }
  return y;
}

// Gradients of sum(y * gy) by the definition: dx, dw, db.
struct DirectGrads {
  xt::xarray<double> y, dx, dw, db;
};
DirectGrads direct_conv_grads(const xt::xarray<double>& x, const xt::xarray<double>& w,
                              const xt::xarray<double>& gy, std::size_t s, std::size_t p) {
  const std::size_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const std::size_t O = w.shape()[0], KH = w.shape()[2], KW = w.shape()[3];
  const std::size_t OH = gy.shape()[2], OW = gy.shape()[3];
  DirectGrads d{xt::zeros<double>(gy.shape()), xt::zeros<double>(x.shape()),
                xt::zeros<double>(w.shape()), xt::zeros<double>({O})};
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < O; ++o)
      for (std::size_t oh = 0; oh < OH; ++oh)
        for (std::size_t ow = 0; ow < OW; ++ow) {
          const double g = gy(n, o, oh, ow);
          d.db(o) += g;
          for (std::size_t c = 0; c < C; ++c)
            for (std::size_t i = 0; i < KH; ++i)
              for (std::size_t j = 0; j < KW; ++j) {
                const long ih = long(oh * s + i) - long(p), iw = long(ow * s + j) - long(p);
                if (ih < 0 || iw < 0 || ih >= long(H) || iw >= long(W)) continue;
                d.y(n, o, oh, ow) += x(n, c, ih, iw) * w(o, c, i, j);
                d.dx(n, c, ih, iw) += g * w(o, c, i, j);
                d.dw(o, c, i, j) += g * x(n, c, ih, iw);
              }
        }
  return d;
}

template <class A, class B>
double max_rel_diff(const A& a, const B& ref) {
  double worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::abs(double(a.data()[i]) - double(ref.data()[i])) /
                                (1 + std::abs(double(ref.data()[i]))));
  return worst;
}

// conv2d(x, w, b, stride 1, pad) and the gradients of sum(y * gy) against the definition:
// to 1e-10 in float64, to 1e-4 in float32 (sums of up to a few thousand products of
// values in [-1, 1]).
void check_against_definition(const Tensor<double>& x, const Tensor<double>& w,
                              const Tensor<double>& b, const Tensor<double>& gy, std::size_t pad) {
  auto ref = direct_conv_grads(x.value(), w.value(), gy.value(), 1, pad);
  for (std::size_t o = 0; o < w.shape()[0]; ++o) xt::view(ref.y, xt::all(), o) += b.value()(o);
  auto check = [&](auto x, auto w, auto b, auto gy, double tol) {
    for (auto* t : {&x, &w, &b}) t->set_requires_grad(true);
    auto y = conv2d(x, w, b, 1, pad);
    sum(mul(y, gy.value())).backward();
    CHECK(max_rel_diff(y.value(), ref.y) < tol);
    CHECK(max_rel_diff(x.grad(), ref.dx) < tol);
    CHECK(max_rel_diff(w.grad(), ref.dw) < tol);
    CHECK(max_rel_diff(b.grad(), ref.db) < tol);
  };
  auto d = [](const Tensor<double>& t) { return Tensor<double>(xt::xarray<double>(t.value())); };
  auto f = [](const Tensor<double>& t) { return Tensor<float>(xt::xarray<float>(t.value())); };
  check(d(x), d(w), d(b), gy, 1e-10);
  check(f(x), f(w), f(b), f(gy), 1e-4);
}

struct Case {
  Shape x, w;
  std::size_t stride, pad;
  bool bias;
};

}  // namespace

TEST_CASE("conv2d forward equals the direct loop (float32)") {
  const Case cases[] = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, 1, 1, true},    {{1, 5, 9, 9}, {2, 5, 3, 3}, 2, 1, false},
      {{3, 4, 5, 5}, {6, 4, 1, 1}, 1, 0, true},    {{2, 3, 6, 8}, {2, 3, 2, 3}, 1, 0, true},
      {{2, 2, 7, 5}, {3, 2, 3, 2}, 2, 2, true},    {{2, 16, 8, 8}, {8, 16, 3, 3}, 1, 1, true},
      {{1, 2, 4, 4}, {3, 2, 1, 1}, 2, 1, false},   {{2, 1, 3, 3}, {1, 1, 5, 5}, 1, 2, true},
      {{4, 8, 11, 10}, {5, 8, 5, 3}, 3, 1, true},  {{2, 3, 5, 7}, {4, 3, 1, 3}, 1, 1, true},
      {{2, 4, 6, 9}, {3, 4, 5, 5}, 1, 2, false},
  };
  unsigned seed = 10;
  for (const Case& k : cases) {
    CAPTURE(shape_str(k.x));
    CAPTURE(shape_str(k.w));
    CAPTURE(k.stride);
    CAPTURE(k.pad);
    auto x = rand_tensor<float>(k.x, ++seed), w = rand_tensor<float>(k.w, ++seed);
    auto b = rand_tensor<float>({k.w[0]}, ++seed);
    auto y = conv2d(x, w, k.bias ? b : Tensor<float>(), k.stride, k.pad);
    auto ref = direct_conv(x.value(), w.value(), k.bias ? &b.value() : nullptr, k.stride, k.pad);
    REQUIRE(y.shape() == to_shape(ref.shape()));
    double worst = 0;
    for (std::size_t i = 0; i < ref.size(); ++i)
      worst = std::max(worst, std::abs(y.value().data()[i] - ref.data()[i]) /
                                  (1 + std::abs(ref.data()[i])));
    CHECK(worst < 1e-5);
  }
}

// Large images are cut into blocks of output rows (a few MB of columns each): 32 channels
// of 64x64 with a 3x3 kernel is 4.7 MB of columns in float, so two blocks.
TEST_CASE("conv2d forward and backward on a blocked image equal the definition") {
  auto x = rand_tensor<double>({1, 32, 64, 64}, 201), w = rand_tensor<double>({2, 32, 3, 3}, 202);
  auto b = rand_tensor<double>({2}, 203), gy = rand_tensor<double>({1, 2, 64, 64}, 204);
  check_against_definition(x, w, b, gy, 1);
}

// 3x3 stride-1 padding-1 convs with 16+ channels each side take Winograd's F(4x4, 3x3)
// (16+ wide) or F(2x2, 3x3): odd sizes (tiles hanging over the edge), chunks of several
// images and of part of one, filter counts not a multiple of 16, on 1 and 2 threads, in
// every algorithm and with every kernel for the products this CPU has, against the
// definition.
TEST_CASE("conv2d: Winograd F(4x4, 3x3), F(2x2, 3x3) and im2col all equal the definition") {
  struct WCase {
    Shape x;
    std::size_t out;
  };
  const WCase cases[] = {{{2, 16, 7, 5}, 17},   {{9, 20, 4, 3}, 16},   {{3, 16, 1, 1}, 16},
                         {{2, 32, 28, 28}, 24}, {{5, 16, 14, 14}, 16}, {{2, 16, 17, 19}, 18},
                         // o * c = 323 filters: a last block of fewer than 16 in the filter transforms
                         {{1, 17, 6, 6}, 19},   {{1, 17, 5, 16}, 19}};
  const ConvAlgorithm saved_algorithm = conv_algorithm();
  const int saved_threads = num_threads();
  const std::string saved_isa = small_gemm::isa();
  unsigned seed = 300;
  for (const WCase& k : cases)
    for (ConvAlgorithm algorithm :
         {ConvAlgorithm::fastest, ConvAlgorithm::winograd_2x2, ConvAlgorithm::im2col})
      for (int threads : {1, 2})
        for (const char* isa : {"avx512", "avx2", "blas"}) {  // the products' kernel
          if (!small_gemm::set_isa(isa)) continue;
          const std::string products = isa;
          CAPTURE(products);
          CAPTURE(shape_str(k.x));
          CAPTURE(k.out);
          CAPTURE(int(algorithm));
          CAPTURE(threads);
          set_conv_algorithm(algorithm);
          set_num_threads(threads);
          auto x = rand_tensor<double>(k.x, ++seed);
          auto w = rand_tensor<double>({k.out, k.x[1], 3, 3}, ++seed);
          auto b = rand_tensor<double>({k.out}, ++seed);
          auto gy = rand_tensor<double>({k.x[0], k.out, k.x[2], k.x[3]}, ++seed);
          check_against_definition(x, w, b, gy, 1);
        }
  set_conv_algorithm(saved_algorithm);
  set_num_threads(saved_threads);
  REQUIRE(small_gemm::set_isa(saved_isa.c_str()));
}

TEST_CASE("conv2d gradcheck through Winograd F(2x2, 3x3) and F(4x4, 3x3)") {
  REQUIRE(conv_algorithm() == ConvAlgorithm::fastest);
  auto f = [](const In& t) { return conv2d(t[0], t[1], t[2], 1, 1); };
  auto w = rand_tensor<double>({16, 16, 3, 3}, 401), b = rand_tensor<double>({16}, 402);
  CHECK(gradcheck(f, In{rand_tensor<double>({2, 16, 3, 5}, 400), w, b}));   // F(2x2, 3x3)
  CHECK(gradcheck(f, In{rand_tensor<double>({1, 16, 2, 17}, 403), w, b}));  // F(4x4, 3x3)
}

TEST_CASE("conv2d gradcheck: kernels 1x1, 3x3, 2x3, 1x3; stride 1, 2; padding 0, 1; bias or not") {
  const Shape kernels[] = {{1, 1}, {3, 3}, {2, 3}, {1, 3}};
  unsigned seed = 100;
  for (const Shape& k : kernels)
    for (std::size_t stride : {1, 2})
      for (std::size_t pad : {0, 1})
        for (bool with_bias : {true, false}) {
          CAPTURE(shape_str(k));
          CAPTURE(stride);
          CAPTURE(pad);
          CAPTURE(with_bias);
          auto x = rand_tensor<double>({2, 2, 5, 4}, ++seed);
          auto w = rand_tensor<double>({3, 2, k[0], k[1]}, ++seed);
          auto b = rand_tensor<double>({3}, ++seed);
          In in{x, w};
          if (with_bias) in.push_back(b);
          auto f = [&](const In& t) {
            return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor<double>(), stride, pad);
          };
          CHECK(gradcheck(f, in));
        }
}

// Fewer output than input channels, stride 1 (Glow's zero-convs): the weight multiplies
// the image first and each tap's products are added in shifted. Odd kernels, paddings
// that make the output larger or smaller than the input, on 1 and 2 threads; im2col for
// comparison (the 64x64 image takes two blocks of columns there).
TEST_CASE("conv2d: few output channels (weight first, shifted sums) equal the definition") {
  const Case cases[] = {
      {{3, 16, 7, 5}, {4, 16, 3, 3}, 1, 1, true}, {{2, 8, 6, 9}, {3, 8, 2, 3}, 1, 0, true},
      {{2, 6, 4, 3}, {2, 6, 5, 5}, 1, 2, true},   {{2, 5, 5, 7}, {1, 5, 1, 3}, 1, 1, true},
      {{5, 128, 7, 7}, {8, 128, 3, 3}, 1, 1, true}, {{1, 32, 64, 64}, {2, 32, 3, 3}, 1, 1, true},
  };
  const ConvAlgorithm saved_algorithm = conv_algorithm();
  const int saved_threads = num_threads();
  unsigned seed = 500;
  for (const Case& k : cases)
    for (ConvAlgorithm algorithm : {ConvAlgorithm::fastest, ConvAlgorithm::im2col})
      for (int threads : {1, 2}) {
        CAPTURE(shape_str(k.x));
        CAPTURE(shape_str(k.w));
        CAPTURE(k.pad);
        CAPTURE(int(algorithm));
        CAPTURE(threads);
        set_conv_algorithm(algorithm);
        set_num_threads(threads);
        auto x = rand_tensor<double>(k.x, ++seed), w = rand_tensor<double>(k.w, ++seed);
        auto b = rand_tensor<double>({k.w[0]}, ++seed);
        const std::size_t oh = k.x[2] + 2 * k.pad - k.w[2] + 1, ow = k.x[3] + 2 * k.pad - k.w[3] + 1;
        auto gy = rand_tensor<double>({k.x[0], k.w[0], oh, ow}, ++seed);
        check_against_definition(x, w, b, gy, k.pad);
      }
  set_conv_algorithm(saved_algorithm);
  set_num_threads(saved_threads);
}

TEST_CASE("conv2d gradcheck with few output channels: kernels 3x3, 2x3, 1x3; padding 0, 1, 2") {
  REQUIRE(conv_algorithm() == ConvAlgorithm::fastest);
  const Shape kernels[] = {{3, 3}, {2, 3}, {1, 3}};
  unsigned seed = 600;
  for (const Shape& k : kernels)
    for (std::size_t pad : {0, 1, 2})
      for (bool with_bias : {true, false}) {
        CAPTURE(shape_str(k));
        CAPTURE(pad);
        CAPTURE(with_bias);
        auto x = rand_tensor<double>({2, 5, 4, 5}, ++seed);
        auto w = rand_tensor<double>({2, 5, k[0], k[1]}, ++seed);
        const In in = with_bias ? In{x, w, rand_tensor<double>({2}, ++seed)} : In{x, w};
        auto f = [&](const In& t) {
          return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor<double>(), 1, pad);
        };
        CHECK(gradcheck(f, in));
      }
}

TEST_CASE("conv2d: gradients only where asked, accumulated over two uses") {
  auto x = rand_tensor<double>({2, 3, 4, 4}, 1), w = rand_tensor<double>({2, 3, 3, 3}, 2);
  w.set_requires_grad(true);
  sum(conv2d(x, w, {}, 1, 1)).backward();
  CHECK_FALSE(x.has_grad());
  REQUIRE(w.has_grad());
  xt::xarray<double> once = w.grad();
  w.zero_grad();
  sum(add(conv2d(x, w, {}, 1, 1), conv2d(x, w, {}, 1, 1))).backward();
  CHECK(xt::allclose(w.grad(), 2.0 * once));
  CHECK(live_nodes() == 0);
}

TEST_CASE("conv2d: same values and gradients on 1 and 2 threads") {
  const int saved = num_threads();
  auto x = rand_tensor<float>({5, 4, 9, 9}, 3), w = rand_tensor<float>({6, 4, 3, 3}, 4);
  auto b = rand_tensor<float>({6}, 5);
  auto g = rand_tensor<float>({5, 6, 9, 9}, 6);
  auto run = [&](int threads) {
    set_num_threads(threads);
    for (auto* t : {&x, &w, &b}) {
      t->set_requires_grad(true);
      t->zero_grad();
    }
    auto y = conv2d(x, w, b, 1, 1);
    sum(mul(y, g.value())).backward();
    return std::vector<xt::xarray<float>>{y.value(), x.grad(), w.grad(), b.grad()};
  };
  auto one = run(1), two = run(2);
  set_num_threads(saved);
  for (std::size_t i = 0; i < one.size(); ++i) CHECK(xt::allclose(one[i], two[i], 1e-5, 1e-5));
}

TEST_CASE("conv2d: a batch of zero images, and a 1x1 conv as a matrix product") {
  auto w = rand_tensor<double>({3, 2, 3, 3}, 7);
  auto empty = conv2d(Tensor<double>(xt::xarray<double>::from_shape({0, 2, 5, 5})), w, {}, 1, 1);
  CHECK(empty.shape() == Shape{0, 3, 5, 5});
  for (std::size_t width : {5, 17}) {  // Winograd F(2x2) and F(4x4): no tiles at all
    auto w16 = rand_tensor<double>({16, 16, 3, 3}, 10), b16 = rand_tensor<double>({16}, 11);
    w16.set_requires_grad(true);
    b16.set_requires_grad(true);
    auto y = conv2d(Tensor<double>(xt::xarray<double>::from_shape({0, 16, 5, width})), w16, b16, 1, 1);
    CHECK(y.shape() == Shape{0, 16, 5, width});
    sum(y).backward();
    CHECK(xt::all(xt::equal(w16.grad(), 0.0)));
    CHECK(xt::all(xt::equal(b16.grad(), 0.0)));
  }

  auto x = rand_tensor<double>({1, 2, 3, 3}, 8), w1 = rand_tensor<double>({4, 2, 1, 1}, 9);
  auto y = conv2d(x, w1);
  for (std::size_t o = 0; o < 4; ++o)
    for (std::size_t p = 0; p < 9; ++p)
      CHECK(y.value().data()[o * 9 + p] ==
            doctest::Approx(w1.value()(o, 0, 0, 0) * x.value().data()[p] +
                            w1.value()(o, 1, 0, 0) * x.value().data()[9 + p]));
}

TEST_CASE("conv2d on points (1x1 images, 1x1 kernel) is a linear layer over the batch: values and gradcheck") {
  auto x = rand_tensor<double>({7, 3, 1, 1}, 40), w = rand_tensor<double>({5, 3, 1, 1}, 41);
  auto b = rand_tensor<double>({5}, 42);
  const auto y = conv2d(x, w, b);
  REQUIRE(y.shape() == Shape{7, 5, 1, 1});
  for (std::size_t n = 0; n < 7; ++n)
    for (std::size_t o = 0; o < 5; ++o) {
      double want = b.value()(o);
      for (std::size_t c = 0; c < 3; ++c) want += w.value()(o, c, 0, 0) * x.value()(n, c, 0, 0);
      CHECK(y.value()(n, o, 0, 0) == doctest::Approx(want).epsilon(1e-14));
    }
  CHECK(gradcheck([](const In& t) { return conv2d(t[0], t[1], t[2]); }, {x, w, b}));
  CHECK(gradcheck([](const In& t) { return conv2d(t[0], t[1]); }, {x, w}));
  CHECK(conv2d(Tensor<double>(xt::xarray<double>::from_shape({0, 3, 1, 1})), w, b).shape() == Shape{0, 5, 1, 1});
}

TEST_CASE("conv2d: bad shapes are errors naming the op and the shapes") {
  auto x = rand_tensor<double>({2, 3, 5, 5}, 1);
  auto expect_error = [](auto&& f, const std::string& part) {
    try {
      f();
      FAIL("no exception");
    } catch (const ShapeError& e) {
      const std::string msg = e.what();
      CAPTURE(msg);
      CHECK(msg.find("conv2d") != std::string::npos);
      CHECK(msg.find(part) != std::string::npos);
    }
  };
  auto w = rand_tensor<double>({4, 3, 3, 3}, 2);
  expect_error([&] { conv2d(x, rand_tensor<double>({4, 2, 3, 3}, 2)); }, "(4, 2, 3, 3)");
  expect_error([&] { conv2d(rand_tensor<double>({3, 5, 5}, 2), w); }, "(3, 5, 5)");
  expect_error([&] { conv2d(x, w, rand_tensor<double>({3}, 3)); }, "bias (3,)");
  expect_error([&] { conv2d(x, w, {}, 0); }, "stride");
  expect_error([&] { conv2d(x, rand_tensor<double>({4, 3, 7, 1}, 2)); }, "larger");
  CHECK_NOTHROW(conv2d(x, rand_tensor<double>({4, 3, 7, 1}, 2), {}, 1, 1));
}

TEST_CASE("parallel_for: every index once, nested loops serial, errors rethrown") {
  const int saved = num_threads();
  set_num_threads(2);
  CHECK(num_threads() == 2);
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(0, hits.size(), [&](std::size_t i) { hits[i]++; });
  bool all_once = true;
  for (auto& h : hits) all_once = all_once && h.load() == 1;
  CHECK(all_once);

  std::atomic<int> inner{0}, nested_flags{0};
  parallel_for(0, 4, [&](std::size_t) {
    nested_flags += in_parallel_region();
    parallel_for(0, 10, [&](std::size_t) { inner++; });
  });
  CHECK(inner.load() == 40);
  CHECK_THROWS_AS(parallel_for(0, 2, [](std::size_t) { set_num_threads(1); }), std::logic_error);
  CHECK(nested_flags.load() == 4);
  CHECK_FALSE(in_parallel_region());

  CHECK_THROWS_AS(parallel_for(0, 100,
                               [](std::size_t i) {
                                 if (i == 37) throw std::runtime_error("index 37");
                               }),
                  std::runtime_error);
  // The pool still works after an exception, and after resizing.
  std::atomic<long> total{0};
  set_num_threads(1);
  parallel_for(0, 10, [&](std::size_t i) { total += long(i); });
  set_num_threads(2);
  parallel_for(0, 10, [&](std::size_t i) { total += long(i); });
  CHECK(total.load() == 90);
  set_num_threads(saved);
}

TEST_CASE("parallel_for: jobs end when their indices are done, whenever the workers wake") {
  // Busy threads keep the pool's worker off the cores, so it often wakes only after the
  // caller has done every index of a job alone and moved on to the next job. Each job
  // must still run every index exactly once, and nothing of it after parallel_for returns.
  const int saved = num_threads();
  set_num_threads(2);
  std::atomic<bool> stop{false};
  std::vector<std::thread> hogs;
  for (int k = 0; k < 4; ++k)
    hogs.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  static std::atomic<long> current{-1};
  std::atomic<long> late_calls{0}, wrong_counts{0};
  for (long job = 0; job < 3000; ++job) {
    const std::size_t n = 2 + std::size_t(job % 5);
    std::vector<std::atomic<int>> hits(n);
    current = job;
    parallel_for(0, n, [&hits, &late_calls, job](std::size_t i) {
      if (current.load() != job) late_calls++;
      hits[i]++;
    });
    current = -1;
    for (auto& h : hits) wrong_counts += h.load() != 1;
  }
  // An error in a job with late workers: rethrown, the rest of the indices skipped or run once.
  std::vector<std::atomic<int>> hits(50);
  CHECK_THROWS_AS(parallel_for(0, hits.size(),
                               [&](std::size_t i) {
                                 hits[i]++;
                                 if (i == 3) throw std::runtime_error("index 3");
                               }),
                  std::runtime_error);
  int more_than_once = 0;
  for (auto& h : hits) more_than_once += h.load() > 1;
  stop = true;
  for (auto& t : hogs) t.join();
  CHECK(late_calls.load() == 0);
  CHECK(wrong_counts.load() == 0);
  CHECK(more_than_once == 0);
  CHECK(hits[3].load() == 1);
  set_num_threads(saved);
}
