// The real Fashion-MNIST from Debian's dataset-fashion-mnist, when it is installed.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>

#include "datasets/batching.hpp"
#include "datasets/dataset.hpp"

using namespace flowgrad;
using namespace flowgrad::data;

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

TEST_CASE("the installed Fashion-MNIST loads: 60000 + 10000 balanced 28x28 images") {
  std::error_code ec;
  if (!std::filesystem::is_directory(kFashionMnistDir, ec)) {
    MESSAGE("skipped: " << kFashionMnistDir << " does not exist (Debian package dataset-fashion-mnist)");
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  ImageDataset train = load_dataset("fashion-mnist", "", "train");
  const double load_ms = ms_since(t0);
  ImageDataset test = load_dataset("fashion-mnist", "", "test");
  REQUIRE(train.images.shape() == std::vector<std::size_t>{60000, 1, 28, 28});
  REQUIRE(test.images.shape() == std::vector<std::size_t>{10000, 1, 28, 28});
  REQUIRE(train.size() == 60000);
  REQUIRE(test.size() == 10000);
  // Fashion-MNIST has exactly 6000 (train) and 1000 (test) images of each of 10 classes.
  std::vector<std::size_t> train_counts(256), test_counts(256);
  for (auto l : train.labels) ++train_counts[l];
  for (auto l : test.labels) ++test_counts[l];
  for (int c = 0; c < 10; ++c) {
    CHECK(train_counts[c] == 6000);
    CHECK(test_counts[c] == 1000);
  }
  CHECK(std::count(train.images.begin(), train.images.end(), std::uint8_t(255)) > 0);

  // One epoch of batching + dequantization at batch 64.
  Generator g(0);
  Batcher batcher(train, {64, true, false}, g);
  Batch batch;
  std::size_t steps = 0;
  double checksum = 0;
  t0 = std::chrono::steady_clock::now();
  while (batcher.next(batch)) {
    xt::xarray<float> x = dequantize(batch.images, g);
    checksum += x.data()[0];
    ++steps;
  }
  const double epoch_ms = ms_since(t0);
  CHECK(steps == 60000 / 64);
  CHECK(checksum > 0);
  t0 = std::chrono::steady_clock::now();
  TestBatches tb(test, 500);
  double test_sum = 0;
  for (std::size_t i = 0; i < tb.size(); ++i) test_sum += tb.batch(i).data()[0];
  const double test_ms = ms_since(t0);
  MESSAGE("fashion-mnist: train load " << load_ms << " ms, one epoch batch 64 + dequantize " << epoch_ms
                                       << " ms, test split (20 x 500) " << test_ms << " ms");
}
