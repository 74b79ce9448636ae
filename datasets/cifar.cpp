#include "datasets/cifar.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "datasets/byte_reader.hpp"

namespace flowgrad::data {

namespace fs = std::filesystem;

namespace {

// Checks a batch file's size before anything is allocated; returns its record count.
std::size_t record_count(const std::string& path) {
  ByteReader probe(path, /*detect_gzip=*/false);  // opens it: a clear error if unreadable
  std::uint64_t size = probe.file_size();
  if (size == 0)
    throw DataError(path + ": empty file: expected records of " + std::to_string(kCifarRecordBytes) +
                    " bytes (1 label + 3072 pixels), found 0 bytes");
  if (size % kCifarRecordBytes != 0)
    throw DataError(path + ": size " + std::to_string(size) + " is not a multiple of the " +
                    std::to_string(kCifarRecordBytes) + "-byte record (1 label + 3072 pixels): " +
                    std::to_string(size / kCifarRecordBytes) + " whole records, then " +
                    std::to_string(size % kCifarRecordBytes) + " bytes from offset " +
                    std::to_string(size / kCifarRecordBytes * kCifarRecordBytes));
  return size / kCifarRecordBytes;
}

// Reads `count` records of path into images/labels starting at record `first`.
void read_records(const std::string& path, std::size_t count, std::uint8_t* images,
                  std::uint8_t* labels) {
  ByteReader in(path, /*detect_gzip=*/false);
  const std::size_t chunk_records = 1024;
  std::vector<std::uint8_t> buf(chunk_records * kCifarRecordBytes);
  for (std::size_t done = 0; done < count;) {
    std::size_t k = std::min(chunk_records, count - done);
    std::uint64_t chunk_offset = in.offset();
    std::size_t got = in.read(buf.data(), k * kCifarRecordBytes);
    if (got < k * kCifarRecordBytes)  // the file shrank after its size was checked
      throw DataError(path + ": truncated: expected " + std::to_string(count * kCifarRecordBytes) +
                      " bytes, file ends at offset " + std::to_string(in.offset()));
    for (std::size_t r = 0; r < k; ++r) {
      const std::uint8_t* rec = buf.data() + r * kCifarRecordBytes;
      check_label(rec[0], path, chunk_offset + r * kCifarRecordBytes, done + r);
      labels[done + r] = rec[0];
      std::memcpy(images + (done + r) * kCifarImageBytes, rec + 1, kCifarImageBytes);
    }
    done += k;
  }
}

ImageDataset read_files(const std::vector<std::string>& paths) {
  std::vector<std::size_t> counts;
  std::size_t total = 0;
  for (const auto& p : paths) total += counts.emplace_back(record_count(p));
  ImageDataset ds;
  for (const auto& p : paths) ds.source += (ds.source.empty() ? "" : " + ") + p;
  const std::string what = std::to_string(total) + " CIFAR-10 records";
  ds.images = allocate_for(ds.source, total * kCifarRecordBytes, what,
                           [&] { return xt::xarray<std::uint8_t>::from_shape({total, 3, 32, 32}); });
  ds.labels = allocate_for(ds.source, total, what, [&] { return std::vector<std::uint8_t>(total); });
  std::size_t first = 0;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    read_records(paths[i], counts[i], ds.images.data() + first * kCifarImageBytes, ds.labels.data() + first);
    first += counts[i];
  }
  return ds;
}

}  // namespace

ImageDataset read_cifar10_file(const std::string& path) { return read_files({path}); }

ImageDataset load_cifar10(const std::string& dir, const std::string& split) {
  std::vector<std::string> names;
  if (split == "train") {
    for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else if (split == "test") {
    names.push_back("test_batch.bin");
  } else {
    throw DataError(dir + ": unknown split '" + split + "': expected train or test");
  }
  std::error_code ec;
  std::string folder = dir;
  if (fs::is_directory(fs::path(dir) / "cifar-10-batches-bin", ec))
    folder = (fs::path(dir) / "cifar-10-batches-bin").string();
  std::vector<std::string> paths;
  for (const auto& n : names)
    paths.push_back(find_data_file(folder, {n}, "CIFAR-10 " + split + " batch " + n +
                                                     " (directly or under cifar-10-batches-bin/)"));
  return read_files(paths);
}

}  // namespace flowgrad::data
