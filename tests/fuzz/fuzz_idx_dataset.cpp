// An IDX labels + images pair as load_idx_dataset reads it. Input: one byte L, then L
// bytes of the labels file, then the images file (each raw or gzip).
#include <algorithm>
#include <cstdint>

#include "datasets/idx.hpp"
#include "fuzz_common.hpp"

using namespace flowgrad;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t labels_size = std::min<std::size_t>(data[0], size - 1);
  fuzz::write_file("train-labels-idx1-ubyte", data + 1, labels_size);
  fuzz::write_file("train-images-idx3-ubyte", data + 1 + labels_size, size - 1 - labels_size);
  const std::string dir = fuzz::work_dir().string();
  fuzz::loads_or_refuses<data::DataError>(dir, [&] {
    const data::ImageDataset ds = data::load_idx_dataset(dir, "train");
    if (ds.images.dimension() != 4 || ds.images.shape()[0] != ds.labels.size())
      fuzz::finding("images and labels disagree");
    for (auto l : ds.labels)
      if (l >= data::kNumClasses) fuzz::finding("a label outside 0..9 loaded");
  });
  return 0;
}
