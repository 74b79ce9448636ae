// Mini-batches for training (shuffled each epoch, optional random flips), uniform
// dequantization of uint8 pixels to [0,1), and a test split with fixed noise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/random.hpp"
#include "datasets/dataset.hpp"

namespace flowgrad::data {

struct Batch {
  xt::xarray<std::uint8_t> images;   // (B, C, H, W)
  std::vector<std::uint8_t> labels;  // B entries
  std::vector<std::size_t> indices;  // where each image sits in the dataset
};

struct BatchOptions {
  std::size_t batch_size = 64;
  bool drop_last = true;     // training: every step sees a full batch
  bool random_flip = false;  // mirror each image left-right with probability 1/2 (CIFAR)
};

// Shuffled mini-batches, one epoch at a time, drawing the shuffle and flips from `rng`.
// Borrows `data` and `rng`: both must outlive the batcher.
//   Batch b;
//   for (int e = 0; e < epochs; ++e) while (batcher.next(b)) train_step(b);
class Batcher {
 public:
  Batcher(const ImageDataset& data, BatchOptions options, Generator& rng = default_generator());
  Batcher(ImageDataset&&, BatchOptions, Generator& = default_generator()) = delete;  // would dangle

  // Fills `batch` (reusing its buffers) with the next batch of the current epoch; false
  // once the epoch is done. The call after that starts a new epoch with a fresh shuffle.
  bool next(Batch& batch);

  std::size_t batches_per_epoch() const;
  std::size_t epoch() const { return epoch_; }  // epochs started so far
  const std::vector<std::size_t>& order() const { return order_; }  // this epoch's permutation

 private:
  const ImageDataset& data_;
  BatchOptions options_;
  Generator& rng_;
  std::vector<std::size_t> order_;
  std::size_t position_ = 0;
  std::size_t epoch_ = 0;
  bool in_epoch_ = false;
};

// Fisher-Yates with our own unbiased bounded draw, so an order depends only on the
// generator's state, not on the standard library's distributions.
void shuffle_indices(std::vector<std::size_t>& indices, Generator& rng);

// x = (pixel + u) / 256 with fresh u ~ U[0,1) from rng at every call; x in [0,1) and
// floor(256 x) == pixel exactly. u is drawn on a grid of 2^-16 (the float spacing just
// below 1), so pixel + u is exact in float and never rounds up to the next level.
template <class T = float>
xt::xarray<T> dequantize(const xt::xarray<std::uint8_t>& pixels, Generator& rng = default_generator());
template <class T>
void dequantize(const std::uint8_t* pixels, std::size_t n, T* out, Generator& rng);

// Data-parallel training: rank r of N trains on rows [first, first + count) of every
// global batch. Every rank draws the whole global batch (shuffle, flips) and its
// dequantization noise, exactly as one process at that batch size would, and keeps its
// rows, so N ranks at B/N see the images and noise one process sees at B:
//   Batcher batches(train, {global_batch}, shuffle_rng);   // the same on every rank
//   batches.next(batch);
//   auto x = take_rows(dequantize<float>(batch.images, noise_rng), shard_of(global_batch, rank, ranks));
// Shards differ by at most one row; throws std::invalid_argument when one would be empty.
struct Shard {
  std::size_t first = 0, count = 0;
};
Shard shard_of(std::size_t batch_size, std::size_t rank, std::size_t ranks);
template <class T>
xt::xarray<T> take_rows(const xt::xarray<T>& batch, Shard rows);  // along the first axis

// The noise of the deterministic test split: a function of (seed, image index, pixel)
// only, so it does not depend on the training generator, on the batch size, or on
// which batches were asked for before.
inline constexpr std::uint64_t kTestNoiseSeed = 1;

// Images [first, first+count) of data, dequantized with the fixed noise: (count, C, H, W).
template <class T = float>
xt::xarray<T> dequantize_fixed(const ImageDataset& data, std::size_t first, std::size_t count,
                               std::uint64_t seed = kTestNoiseSeed);

// The whole test set in order, in batches of batch_size with the last partial batch
// kept, each dequantized with fixed noise: identical across calls and runs, so test
// bits/dim are comparable. Average a per-image metric by summing over batches and
// dividing by images(). Borrows data.
class TestBatches {
 public:
  TestBatches(const ImageDataset& data, std::size_t batch_size, std::uint64_t seed = kTestNoiseSeed);
  TestBatches(ImageDataset&&, std::size_t, std::uint64_t = kTestNoiseSeed) = delete;  // would dangle

  std::size_t size() const { return (data_.size() + batch_size_ - 1) / batch_size_; }  // batches
  std::size_t images() const { return data_.size(); }
  std::size_t first(std::size_t i) const { return i * batch_size_; }
  std::size_t count(std::size_t i) const;
  template <class T = float>
  xt::xarray<T> batch(std::size_t i) const { return dequantize_fixed<T>(data_, first(i), count(i), seed_); }

 private:
  const ImageDataset& data_;
  std::size_t batch_size_;
  std::uint64_t seed_;
};

}  // namespace flowgrad::data
