#include "datasets/batching.hpp"

#include <algorithm>
#include <cstring>
#include <xtensor/xbuilder.hpp>
#include <numeric>
#include <limits>
#include <stdexcept>
#include <string>

#include "autograd/instantiate.hpp"

namespace flowgrad::data {

namespace {

// Unbiased draw in [0, bound] by rejection on the top of the 64-bit range.
std::uint64_t draw_up_to(std::uint64_t bound, Generator& rng) {
  if (bound == std::numeric_limits<std::uint64_t>::max()) return rng();
  const std::uint64_t range = bound + 1;
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % range;
  std::uint64_t r;
  do r = rng();
  while (r >= limit);
  return r % range;
}

// Pixel p with 16-bit noise k: (p * 2^16 + k) / 2^24 is exact in float and lies in [p/256, (p+1)/256).
template <class T>
inline T level(std::uint8_t p, std::uint64_t k) {
  return T((std::uint32_t(p) << 16) | std::uint32_t(k & 0xffff)) * T(1.0 / 16777216.0);
}

// Four noise values per 64-bit word.
template <class T, class Next>
void dequantize_with(const std::uint8_t* px, std::size_t n, T* out, Next&& next_word) {
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    std::uint64_t r = next_word();
    out[i] = level<T>(px[i], r);
    out[i + 1] = level<T>(px[i + 1], r >> 16);
    out[i + 2] = level<T>(px[i + 2], r >> 32);
    out[i + 3] = level<T>(px[i + 3], r >> 48);
  }
  if (i < n) {
    std::uint64_t r = next_word();
    for (; i < n; ++i, r >>= 16) out[i] = level<T>(px[i], r);
  }
}

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void mirror_rows(std::uint8_t* image, std::size_t rows, std::size_t width) {
  for (std::size_t r = 0; r < rows; ++r) std::reverse(image + r * width, image + (r + 1) * width);
}

}  // namespace

void shuffle_indices(std::vector<std::size_t>& indices, Generator& rng) {
  for (std::size_t i = indices.size(); i > 1; --i) {
    std::size_t j = draw_up_to(i - 1, rng);
    std::swap(indices[i - 1], indices[j]);
  }
}

Batcher::Batcher(const ImageDataset& data, BatchOptions options, Generator& rng)
    : data_(data), options_(options), rng_(rng) {
  if (options_.batch_size == 0) throw DataError(data.source + ": batch size 0: expected a positive batch size");
  if (data.images.dimension() != 4 || data.images.shape()[0] != data.labels.size())
    throw DataError(data.source + ": expected images (N, C, H, W) with N equal to the " +
                    std::to_string(data.labels.size()) + " labels");
  order_.resize(data.size());
}

std::size_t Batcher::batches_per_epoch() const {
  const std::size_t n = data_.size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

bool Batcher::next(Batch& batch) {
  if (!in_epoch_) {
    std::iota(order_.begin(), order_.end(), std::size_t(0));
    shuffle_indices(order_, rng_);
    position_ = 0;
    ++epoch_;
    in_epoch_ = true;
  }
  const std::size_t n = order_.size(), remaining = n - position_;
  std::size_t b = std::min(options_.batch_size, remaining);
  if (b == 0 || (options_.drop_last && b < options_.batch_size)) {
    in_epoch_ = false;
    return false;
  }
  const std::size_t c = data_.channels(), h = data_.height(), w = data_.width(), image = c * h * w;
  batch.images.resize({b, c, h, w});
  batch.labels.resize(b);
  batch.indices.assign(order_.begin() + position_, order_.begin() + position_ + b);
  const std::uint8_t* src = data_.images.data();
  std::uint8_t* dst = batch.images.data();
  for (std::size_t j = 0; j < b; ++j) {
    const std::size_t idx = batch.indices[j];
    std::memcpy(dst + j * image, src + idx * image, image);
    batch.labels[j] = data_.labels[idx];
    if (options_.random_flip && (rng_() >> 63)) mirror_rows(dst + j * image, c * h, w);
  }
  position_ += b;
  return true;
}

template <class T>
void dequantize(const std::uint8_t* pixels, std::size_t n, T* out, Generator& rng) {
  dequantize_with<T>(pixels, n, out, [&rng] { return rng(); });
}

template <class T>
xt::xarray<T> dequantize(const xt::xarray<std::uint8_t>& pixels, Generator& rng) {
  xt::xarray<T> out = xt::xarray<T>::from_shape(pixels.shape());
  dequantize<T>(pixels.data(), pixels.size(), out.data(), rng);
  return out;
}

template <class T>
xt::xarray<T> dequantize_fixed(const ImageDataset& data, std::size_t first, std::size_t count,
                               std::uint64_t seed) {
  if (first > data.size() || count > data.size() - first)
    throw DataError(data.source + ": images [" + std::to_string(first) + ", " + std::to_string(first + count) +
                    ") requested, expected a range within the " + std::to_string(data.size()) + " images");
  const std::size_t image = data.image_size();
  xt::xarray<T> out = xt::xarray<T>::from_shape({count, data.channels(), data.height(), data.width()});
  std::uint64_t seed_state = seed;
  const std::uint64_t seed_hash = splitmix64(seed_state);
  for (std::size_t j = 0; j < count; ++j) {
    // Each image gets its own stream, keyed by its index in the set.
    std::uint64_t key = seed_hash ^ (first + j);
    std::uint64_t state = splitmix64(key);
    dequantize_with<T>(data.images.data() + (first + j) * image, image, out.data() + j * image,
                       [&state] { return splitmix64(state); });
  }
  return out;
}

Shard shard_of(std::size_t batch_size, std::size_t rank, std::size_t ranks) {
  if (ranks == 0 || rank >= ranks) throw std::invalid_argument("shard_of: rank " + std::to_string(rank) + " of " + std::to_string(ranks));
  if (batch_size < ranks)
    throw std::invalid_argument("a batch of " + std::to_string(batch_size) + " cannot be split over " +
                                std::to_string(ranks) + " ranks: give a batch of at least one image per rank");
  const std::size_t first = rank * batch_size / ranks, end = (rank + 1) * batch_size / ranks;
  return {first, end - first};
}

template <class T>
xt::xarray<T> take_rows(const xt::xarray<T>& batch, Shard rows) {
  if (batch.dimension() == 0 || rows.first + rows.count > batch.shape()[0])
    throw std::invalid_argument("take_rows: rows [" + std::to_string(rows.first) + ", " +
                                std::to_string(rows.first + rows.count) + ") of a batch of " +
                                std::to_string(batch.dimension() ? batch.shape()[0] : 0));
  auto shape = batch.shape();
  const std::size_t per_row = shape[0] ? batch.size() / shape[0] : 0;
  shape[0] = rows.count;
  xt::xarray<T> out = xt::empty<T>(shape);
  std::copy_n(batch.data() + rows.first * per_row, rows.count * per_row, out.data());
  return out;
}

TestBatches::TestBatches(const ImageDataset& data, std::size_t batch_size, std::uint64_t seed)
    : data_(data), batch_size_(batch_size), seed_(seed) {
  if (batch_size == 0) throw DataError(data.source + ": batch size 0: expected a positive batch size");
}

std::size_t TestBatches::count(std::size_t i) const {
  if (i >= size())
    throw DataError(data_.source + ": test batch " + std::to_string(i) + " requested, expected one of the " +
                    std::to_string(size()) + " batches");
  return std::min(batch_size_, data_.size() - first(i));
}

#define FLOWGRAD_INSTANTIATE_DEQUANTIZE(T)                                                      \
  template void dequantize<T>(const std::uint8_t*, std::size_t, T*, Generator&);                \
  template xt::xarray<T> dequantize<T>(const xt::xarray<std::uint8_t>&, Generator&);            \
  template xt::xarray<T> dequantize_fixed<T>(const ImageDataset&, std::size_t, std::size_t, std::uint64_t); \
  template xt::xarray<T> take_rows<T>(const xt::xarray<T>&, Shard);
FLOWGRAD_FOR_EACH_SCALAR(FLOWGRAD_INSTANTIATE_DEQUANTIZE)

}  // namespace flowgrad::data
