// Sequential reading of a data file that may be gzip-compressed: detected by the
// 1f 8b magic, never by the file name. Internal to the readers of this folder.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <zlib.h>

namespace flowgrad::data {

// The file's name without its directory, for short error messages.
std::string file_name(const std::string& path);
// The first of `names` that exists in dir. DataError naming dir and every name tried
// when dir is missing or none of them is there; `what` says what the file holds.
std::string find_data_file(const std::string& dir, const std::vector<std::string>& names,
                           const std::string& what);

class ByteReader {
 public:
  // DataError if it cannot be opened. detect_gzip=false reads the bytes as they are.
  explicit ByteReader(const std::string& path, bool detect_gzip = true);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  const std::string& path() const { return path_; }
  bool gzip() const { return gzip_; }
  std::uint64_t file_size() const { return file_size_; }  // on disk (compressed for gzip)
  std::uint64_t offset() const { return offset_; }        // (decompressed) bytes delivered so far

  // Reads up to n bytes into dst; fewer only at the end of the data.
  // Corrupt gzip data is a DataError naming the offset.
  std::size_t read(void* dst, std::size_t n);
  // Reads exactly n bytes, in chunks, so a lying size costs no more memory than the
  // data really present. Short data: DataError "<file>: truncated: expected <what>..."
  std::vector<std::uint8_t> read_exactly(std::size_t n, const std::string& what);
  // True when a gzip stream ended without its trailer (the file was cut).
  bool gzip_cut() const { return gzip_cut_; }
  // DataError if any byte remains after what was read.
  void expect_end(const std::string& what);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  bool gzip_ = false;
  bool gzip_cut_ = false;
  bool stream_done_ = false;  // gzip: a member ended and no more input follows
  std::uint64_t file_size_ = 0;
  std::uint64_t offset_ = 0;
  z_stream zs_{};
  std::vector<unsigned char> in_;  // compressed input buffer
};

}  // namespace flowgrad::data
