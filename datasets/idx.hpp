// IDX files, the format of MNIST and Fashion-MNIST: a big-endian header (magic, then
// one uint32 per dimension) followed by uint8 data. Raw or gzip-compressed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "datasets/dataset.hpp"

namespace flowgrad::data {

inline constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  // uint8, 3 dimensions (N, H, W)
inline constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  // uint8, 1 dimension (N)

// Images as (N, 1, H, W). DataError on a wrong magic, zero or overflowing dimensions,
// a size the file cannot hold (checked before allocating or inflating), truncated or
// trailing data, corrupt gzip, a gzip trailer missing or disagreeing with the data;
// for labels also a label outside 0..9.
xt::xarray<std::uint8_t> read_idx_images(const std::string& path);
std::vector<std::uint8_t> read_idx_labels(const std::string& path);

// The official file names in dir: split "train" -> train-{images-idx3,labels-idx1}-ubyte,
// "test" -> t10k-..., each tried with .gz first, then raw. Counts must agree: the
// labels are read first, and the images' count checked before they are inflated.
ImageDataset load_idx_dataset(const std::string& dir, const std::string& split);

}  // namespace flowgrad::data
