// CIFAR-10, binary version: records of 1 label byte + 3072 pixel bytes (the 1024 R,
// then G, then B values of a 32x32 image, row-major).
#pragma once

#include <cstddef>
#include <string>

#include "datasets/dataset.hpp"

namespace flowgrad::data {

inline constexpr std::size_t kCifarImageBytes = 3 * 32 * 32;
inline constexpr std::size_t kCifarRecordBytes = 1 + kCifarImageBytes;  // 3073

// Records of one batch file, appended to images (N, 3, 32, 32) and labels.
// DataError for an empty file, a size not a multiple of 3073, or a label > 9.
ImageDataset read_cifar10_file(const std::string& path);

// dir holds cifar-10-batches-bin/ or is that folder itself. split "train" reads
// data_batch_1.bin .. data_batch_5.bin, "test" reads test_batch.bin.
ImageDataset load_cifar10(const std::string& dir, const std::string& split);

}  // namespace flowgrad::data
