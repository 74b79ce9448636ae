// Sequential reading of a data file that may be gzip-compressed: detected by the
// 1f 8b magic, never by the file name. Internal to the readers of this folder.
#pragma once

#include <cstdint>
#include <cstdio>
#include <new>
#include <string>
#include <vector>

#include <zlib.h>

#include "datasets/dataset.hpp"

namespace flowgrad::data {

// Deflate turns at most 2 bits of input into one 258-byte match, so no gzip file
// inflates to more than 1032 times its size (zlib's FAQ). A header that declares more
// than that lies, and is refused before anything is inflated or allocated.
inline constexpr std::uint64_t kMaxDeflateRatio = 1032;

// The file's name without its directory, for short error messages.
std::string file_name(const std::string& path);
// The first of `names` that exists in dir. DataError naming dir and every name tried
// when dir is missing or none of them is there; `what` says what the file holds.
std::string find_data_file(const std::string& dir, const std::vector<std::string>& names,
                           const std::string& what);

// Runs allocate(); running out of memory becomes a DataError naming the file, the size
// and what it was for, instead of a bare std::bad_alloc.
template <class Allocate>
auto allocate_for(const std::string& path, std::uint64_t bytes, const std::string& what,
                  Allocate&& allocate) {
  try {
    return allocate();
  } catch (const std::bad_alloc&) {
    throw DataError(path + ": cannot allocate " + std::to_string(bytes) + " bytes for " + what +
                    ": out of memory");
  }
}

// DataError unless label < kNumClasses: "<file>: label 12 at offset 3073 (record 1): ...".
void check_label(std::uint8_t label, const std::string& path, std::uint64_t offset, std::size_t record);

class ByteReader {
 public:
  // DataError if it is not a regular file (a FIFO would block, a device never ends) or
  // cannot be opened. detect_gzip=false reads the bytes as they are.
  explicit ByteReader(const std::string& path, bool detect_gzip = true);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  const std::string& path() const { return path_; }
  bool gzip() const { return gzip_; }
  std::uint64_t file_size() const { return file_size_; }  // on disk (compressed for gzip)
  std::uint64_t offset() const { return offset_; }        // (decompressed) bytes delivered so far

  // Reads up to n bytes into dst; fewer only at the end of the data.
  // Corrupt gzip data or a gzip trailer whose CRC-32 or length disagrees with the data
  // is a DataError naming the compressed and decompressed offsets.
  std::size_t read(void* dst, std::size_t n);
  // DataError unless n more bytes can be in the file: a raw file's size is known; a
  // gzip file holds at most kMaxDeflateRatio times its size. Call it before allocating.
  // `what` says what the bytes are, e.g. "16-byte header + 3 images of 28x28".
  void require_available(std::uint64_t n, const std::string& what) const;
  // require_available, then exactly n bytes into dst. Short data: DataError
  // "<file>: truncated: expected <end> bytes (<what>), file ends at offset <offset>".
  void read_exactly(void* dst, std::size_t n, const std::string& what);
  // DataError if any byte remains after what was read, or (gzip) if the stream is not
  // complete: its last block and its 8-byte CRC-32 and length trailer read and checked.
  void expect_end(const std::string& what);

 private:
  std::uint64_t compressed_offset() const { return compressed_read_ - zs_.avail_in; }
  [[noreturn]] void throw_truncated(std::uint64_t expected_end, std::uint64_t ends_at,
                                    const std::string& what) const;

  std::string path_;
  std::FILE* file_ = nullptr;
  bool gzip_ = false;
  bool gzip_cut_ = false;     // the file ended inside a gzip member
  bool stream_done_ = false;  // gzip: a member ended and no more input follows
  std::uint64_t file_size_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t compressed_read_ = 0;  // gzip: bytes of the file fed to zlib so far
  z_stream zs_{};
  std::vector<unsigned char> in_;  // compressed input buffer
};

}  // namespace flowgrad::data
