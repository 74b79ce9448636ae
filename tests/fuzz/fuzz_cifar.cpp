// A CIFAR-10 batch file: records of 1 label byte + 3072 pixel bytes.
#include <cstdint>
#include <cstring>

#include "datasets/cifar.hpp"
#include "fuzz_common.hpp"

using namespace flowgrad;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_file("test_batch.bin", data, size);
  fuzz::loads_or_refuses<data::DataError>(path, [&] {
    const data::ImageDataset ds = data::load_cifar10(fuzz::work_dir().string(), "test");
    if (ds.size() * data::kCifarRecordBytes != size) fuzz::finding("records do not fill the file exactly");
    for (std::size_t i = 0; i < ds.size(); ++i) {
      const std::uint8_t* record = data + i * data::kCifarRecordBytes;
      if (ds.labels[i] != record[0] || ds.labels[i] >= data::kNumClasses) fuzz::finding("wrong label");
      if (std::memcmp(ds.images.data() + i * data::kCifarImageBytes, record + 1, data::kCifarImageBytes) != 0)
        fuzz::finding("wrong pixels");
    }
  });
  return 0;
}
