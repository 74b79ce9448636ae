// IDX images and labels, raw or gzip: the input is one file, read as both.
#include <cstdint>

#include "datasets/idx.hpp"
#include "fuzz_common.hpp"

using namespace flowgrad;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_file("input-idx", data, size);
  const bool raw = !(size >= 2 && data[0] == 0x1f && data[1] == 0x8b);
  fuzz::loads_or_refuses<data::DataError>(path, [&] {
    const auto images = data::read_idx_images(path);
    if (images.dimension() != 4 || images.shape()[1] != 1) fuzz::finding("images are not (N, 1, H, W)");
    if (raw && images.size() + 16 != size) fuzz::finding("raw images do not fill the file exactly");
  });
  fuzz::loads_or_refuses<data::DataError>(path, [&] {
    const auto labels = data::read_idx_labels(path);
    for (auto l : labels)
      if (l >= data::kNumClasses) fuzz::finding("a label outside 0..9 loaded");
    if (raw && labels.size() + 8 != size) fuzz::finding("raw labels do not fill the file exactly");
  });
  return 0;
}
