// The result every reader returns, the error every reader throws, and one entry point
// that picks the reader by dataset name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

namespace flowgrad::data {

// Bad or missing data. The message names the file, what was expected, what was found
// and, where it helps, the byte offset.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Every dataset here (MNIST, Fashion-MNIST, CIFAR-10) has ten classes, labelled 0..9.
inline constexpr std::size_t kNumClasses = 10;

struct ImageDataset {
  xt::xarray<std::uint8_t> images;   // (N, C, H, W), contiguous row-major
  std::vector<std::uint8_t> labels;  // N entries
  std::string source;                // the files it was read from, for logs

  std::size_t size() const { return labels.size(); }
  std::size_t channels() const { return images.shape()[1]; }
  std::size_t height() const { return images.shape()[2]; }
  std::size_t width() const { return images.shape()[3]; }
  std::size_t image_size() const { return channels() * height() * width(); }  // C*H*W
};

// Where Debian's dataset-fashion-mnist package puts the four .gz IDX files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// name: "fashion-mnist", "mnist" or "cifar10"; split: "train" or "test".
// An empty dir means kFashionMnistDir for fashion-mnist; mnist and cifar10 need one.
// Throws DataError for an unknown name or split, missing files, bad files, or an empty set.
ImageDataset load_dataset(const std::string& name, const std::string& dir, const std::string& split);

}  // namespace flowgrad::data
