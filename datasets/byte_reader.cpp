#include "datasets/byte_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "datasets/dataset.hpp"

namespace flowgrad::data {

namespace fs = std::filesystem;

std::string file_name(const std::string& path) { return fs::path(path).filename().string(); }

std::string find_data_file(const std::string& dir, const std::vector<std::string>& names,
                           const std::string& what) {
  std::string tried;
  for (const auto& n : names) tried += (tried.empty() ? "" : ", ") + n;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw DataError(dir + ": directory not found (expected it to hold " + what + ": " + tried + ")");
  for (const auto& n : names) {
    fs::path p = fs::path(dir) / n;
    if (fs::exists(p, ec)) return p.string();
  }
  throw DataError(dir + ": no file for " + what + ": tried " + tried);
}

ByteReader::ByteReader(const std::string& path, bool detect_gzip) : path_(path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw DataError(path + ": expected a file, found a directory");
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw DataError(path + ": cannot open: " + std::strerror(errno));
  file_size_ = fs::file_size(path, ec);
  if (ec) file_size_ = 0;
  unsigned char magic[2] = {0, 0};
  std::size_t got = std::fread(magic, 1, 2, file_);
  gzip_ = detect_gzip && got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  std::rewind(file_);
  if (gzip_) {
    in_.resize(1 << 18);
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) {  // 15+16: a gzip wrapper, not zlib
      std::fclose(file_);
      throw DataError(path + ": cannot start zlib inflate");
    }
  }
}

ByteReader::~ByteReader() {
  if (gzip_) inflateEnd(&zs_);
  if (file_) std::fclose(file_);
}

std::size_t ByteReader::read(void* dst, std::size_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  if (!gzip_) {
    std::size_t got = std::fread(out, 1, n, file_);
    if (got < n && std::ferror(file_))
      throw DataError(path_ + ": read error at offset " + std::to_string(offset_ + got) + ": " +
                      std::strerror(errno));
    offset_ += got;
    return got;
  }
  std::size_t total = 0;
  while (total < n && !stream_done_ && !gzip_cut_) {
    // avail_out is 32-bit: feed the output in pieces.
    std::size_t piece = std::min<std::size_t>(n - total, std::size_t(1) << 30);
    zs_.next_out = out + total;
    zs_.avail_out = static_cast<uInt>(piece);
    while (zs_.avail_out > 0) {
      if (zs_.avail_in == 0) {
        std::size_t fed = std::fread(in_.data(), 1, in_.size(), file_);
        if (fed == 0) {
          if (std::ferror(file_))
            throw DataError(path_ + ": read error in the compressed file: " + std::strerror(errno));
          gzip_cut_ = true;  // input ended before the gzip trailer
          break;
        }
        zs_.next_in = in_.data();
        zs_.avail_in = static_cast<uInt>(fed);
      }
      int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        // Concatenated gzip members are valid gzip: continue if more input follows.
        if (zs_.avail_in == 0) {
          int c = std::fgetc(file_);
          if (c == EOF) {
            stream_done_ = true;
            break;
          }
          std::ungetc(c, file_);
        }
        inflateReset(&zs_);
        continue;
      }
      if (rc == Z_OK || (rc == Z_BUF_ERROR && zs_.avail_in == 0)) continue;
      std::uint64_t at = offset_ + total + (piece - zs_.avail_out);
      throw DataError(path_ + ": corrupt gzip data: expected a valid deflate stream, zlib says '" +
                      std::string(zs_.msg ? zs_.msg : zError(rc)) + "' at decompressed offset " +
                      std::to_string(at));
    }
    total += piece - zs_.avail_out;
  }
  offset_ += total;
  return total;
}

std::vector<std::uint8_t> ByteReader::read_exactly(std::size_t n, const std::string& what) {
  const std::uint64_t expected_end = offset_ + n;
  auto truncated = [&](std::uint64_t ends_at) {
    return DataError(path_ + ": truncated: expected " + std::to_string(expected_end) + " bytes (" +
                     what + "), file ends at offset " + std::to_string(ends_at) +
                     (gzip_ ? " of the decompressed data" : "") +
                     (gzip_cut_ ? " (the gzip stream is cut short)" : ""));
  };
  // A raw file's size is known: refuse before allocating anything.
  if (!gzip_ && expected_end > file_size_) throw truncated(file_size_);
  std::vector<std::uint8_t> bytes;
  if (!gzip_) bytes.reserve(n);
  const std::size_t chunk = std::size_t(16) << 20;  // bounds what a lying gzip header can allocate
  while (bytes.size() < n) {
    std::size_t want = std::min(chunk, n - bytes.size());
    std::size_t had = bytes.size();
    bytes.resize(had + want);
    std::size_t got = read(bytes.data() + had, want);
    if (got < want) throw truncated(offset_);
  }
  return bytes;
}

void ByteReader::expect_end(const std::string& what) {
  unsigned char extra[1];
  std::uint64_t end = offset_;
  if (read(extra, 1) == 0) return;
  std::string size = gzip_ ? "" : " (the file has " + std::to_string(file_size_) + " bytes)";
  throw DataError(path_ + ": trailing data: expected the file to end at offset " + std::to_string(end) +
                  " after " + what + ", found more bytes" + size);
}

}  // namespace flowgrad::data
