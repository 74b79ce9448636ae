// Epoch batching, dequantization and the fixed-noise test split, on in-memory data.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "datasets/batching.hpp"

using namespace flowgrad;
using namespace flowgrad::data;

namespace {

// n images of c x h x w whose pixels encode the image index, labels = index % 10.
ImageDataset synthetic(std::size_t n, std::size_t c = 1, std::size_t h = 4, std::size_t w = 5) {
  ImageDataset ds;
  ds.images = xt::xarray<std::uint8_t>::from_shape({n, c, h, w});
  for (std::size_t i = 0; i < ds.images.size(); ++i) ds.images.data()[i] = std::uint8_t((i * 37 + i / 7) % 256);
  ds.labels.resize(n);
  for (std::size_t i = 0; i < n; ++i) ds.labels[i] = std::uint8_t(i % 10);
  ds.source = "synthetic";
  return ds;
}

std::vector<std::size_t> one_epoch(Batcher& b, std::size_t* batches = nullptr) {
  std::vector<std::size_t> seen;
  Batch batch;
  std::size_t count = 0;
  while (b.next(batch)) {
    seen.insert(seen.end(), batch.indices.begin(), batch.indices.end());
    ++count;
  }
  if (batches) *batches = count;
  return seen;
}

}  // namespace

TEST_CASE("batcher: same seed, same order; a new epoch, a new order; each index once") {
  ImageDataset ds = synthetic(103);
  Generator g1(42), g2(42), g3(43);
  Batcher a(ds, {10, true, false}, g1), b(ds, {10, true, false}, g2), c(ds, {10, true, false}, g3);
  CHECK(a.batches_per_epoch() == 10);
  std::size_t batches = 0;
  auto a1 = one_epoch(a, &batches), b1 = one_epoch(b), c1 = one_epoch(c);
  CHECK(batches == 10);
  CHECK(a1.size() == 100);
  CHECK(a1 == b1);
  CHECK(a1 != c1);
  CHECK(std::set<std::size_t>(a1.begin(), a1.end()).size() == 100);  // no repeats
  auto a2 = one_epoch(a);
  CHECK(a.epoch() == 2);
  CHECK(a2 != a1);
  CHECK(a2 == one_epoch(b));

  // Keeping the last partial batch: every index exactly once.
  Generator g4(7);
  Batcher keep(ds, {10, false, false}, g4);
  CHECK(keep.batches_per_epoch() == 11);
  for (int e = 0; e < 3; ++e) {
    auto seen = one_epoch(keep, &batches);
    CHECK(batches == 11);
    std::sort(seen.begin(), seen.end());
    std::vector<std::size_t> all(103);
    std::iota(all.begin(), all.end(), std::size_t(0));
    CHECK(seen == all);
  }
}

TEST_CASE("batcher: batch content matches the dataset; flips mirror rows") {
  ImageDataset ds = synthetic(40, 3, 4, 5);
  Generator g(1);
  Batcher plain(ds, {8, true, false}, g);
  Batch batch;
  REQUIRE(plain.next(batch));
  REQUIRE(batch.images.shape() == std::vector<std::size_t>{8, 3, 4, 5});
  for (std::size_t j = 0; j < 8; ++j) {
    const std::size_t i = batch.indices[j];
    CHECK(batch.labels[j] == ds.labels[i]);
    CHECK(xt::view(batch.images, j) == xt::view(ds.images, i));
  }

  Generator gf(2);
  Batcher flipping(ds, {8, false, true}, gf);
  std::size_t mirrored = 0, kept = 0;
  while (flipping.next(batch)) {
    for (std::size_t j = 0; j < batch.labels.size(); ++j) {
      xt::xarray<std::uint8_t> got = xt::view(batch.images, j), original = xt::view(ds.images, batch.indices[j]);
      xt::xarray<std::uint8_t> flipped = xt::flip(original, 2);
      bool is_original = got == original, is_flipped = got == flipped;
      CHECK((is_original || is_flipped));
      mirrored += is_flipped && !is_original;
      kept += is_original;
    }
  }
  CHECK(mirrored > 5);
  CHECK(kept > 5);
}

TEST_CASE("batcher rejects a zero batch size") {
  ImageDataset ds = synthetic(4);
  CHECK_THROWS_AS(Batcher(ds, {0, true, false}), DataError);
  CHECK_THROWS_AS(TestBatches(ds, 0), DataError);
}

TEST_CASE("dequantize: x in [0,1), floor(256 x) == pixel, fresh noise each call") {
  xt::xarray<std::uint8_t> px = xt::xarray<std::uint8_t>::from_shape({4096, 1, 16, 16});
  for (std::size_t i = 0; i < px.size(); ++i) px.data()[i] = std::uint8_t(i % 256);
  Generator g(3);
  xt::xarray<float> x = dequantize(px, g), y = dequantize(px, g);
  REQUIRE(x.shape() == px.shape());
  double noise_sum = 0;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < px.size(); ++i) {
    float v = x.data()[i];
    bad += !(v >= 0.f && v < 1.f) || std::floor(v * 256.f) != float(px.data()[i]);
    noise_sum += double(v) * 256.0 - px.data()[i];
  }
  CHECK(bad == 0);
  CHECK(std::abs(noise_sum / double(px.size()) - 0.5) < 0.002);  // u ~ U[0,1): mean 1/2
  CHECK(x != y);
  // The top level never rounds up to 1, in float or double.
  xt::xarray<std::uint8_t> top = xt::xarray<std::uint8_t>::from_shape({1 << 16});
  top.fill(255);
  CHECK(xt::amax(dequantize<float>(top, g))() < 1.f);
  xt::xarray<double> d = dequantize<double>(px, g);
  CHECK(xt::all(xt::equal(xt::floor(d * 256.0), xt::cast<double>(px))));
  CHECK(xt::all(d < 1.0));
}

TEST_CASE("test split: fixed noise, whole set, independent of batch size and training RNG") {
  ImageDataset ds = synthetic(23, 3, 4, 4);
  TestBatches t1(ds, 5), t2(ds, 5), t3(ds, 7), other(ds, 5, kTestNoiseSeed + 1);
  CHECK(t1.size() == 5);
  std::size_t total = 0;
  for (std::size_t i = 0; i < t1.size(); ++i) total += t1.count(i);
  CHECK(total == 23);
  CHECK(t1.count(4) == 3);
  CHECK_THROWS_AS(t1.count(5), DataError);

  auto all_of = [](const TestBatches& t) {
    std::vector<float> v;
    for (std::size_t i = 0; i < t.size(); ++i) {
      xt::xarray<float> b = t.batch(i);
      CHECK(b.shape()[0] == t.count(i));
      v.insert(v.end(), b.begin(), b.end());
    }
    return v;
  };
  auto first = all_of(t1);
  default_generator()();  // training draws must not matter
  CHECK(first == all_of(t2));
  CHECK(first == all_of(t3));
  CHECK(first != all_of(other));
  REQUIRE(first.size() == ds.images.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < first.size(); ++i)
    bad += !(first[i] >= 0.f && first[i] < 1.f) || std::floor(first[i] * 256.f) != float(ds.images.data()[i]);
  CHECK(bad == 0);
  // Batches asked for out of order are the same batches.
  CHECK(t1.batch(3) == t2.batch(3));
  CHECK(t1.batch<double>(0).shape()[0] == 5);
}

TEST_CASE("shards: rank r of N gets its rows of the global batch, sizes differ by at most one") {
  for (std::size_t batch : {1, 2, 7, 63, 64}) {
    for (std::size_t ranks = 1; ranks <= std::min<std::size_t>(batch, 5); ++ranks) {
      CAPTURE(batch);
      CAPTURE(ranks);
      std::size_t next = 0, smallest = batch, largest = 0;
      for (std::size_t r = 0; r < ranks; ++r) {
        const Shard s = shard_of(batch, r, ranks);
        CHECK(s.first == next);  // contiguous, in rank order
        next += s.count;
        smallest = std::min(smallest, s.count), largest = std::max(largest, s.count);
      }
      CHECK(next == batch);  // every row once
      CHECK(largest - smallest <= 1);
      CHECK(smallest >= 1);
    }
  }
  CHECK_THROWS_WITH_AS(shard_of(2, 0, 3), "a batch of 2 cannot be split over 3 ranks: give a batch of at least one image per rank",
                       std::invalid_argument);
  CHECK_THROWS_AS(shard_of(8, 2, 2), std::invalid_argument);

  const xt::xarray<float> batch = xt::reshape_view(xt::arange<float>(5 * 6), {5, 2, 3});
  const xt::xarray<float> rows = take_rows(batch, Shard{1, 3});
  CHECK(rows == xt::xarray<float>(xt::view(batch, xt::range(1, 4))));
  CHECK(take_rows(batch, Shard{5, 0}).shape()[0] == 0);
  CHECK_THROWS_AS(take_rows(batch, Shard{4, 2}), std::invalid_argument);
}
