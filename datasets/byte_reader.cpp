#include "datasets/byte_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

namespace flowgrad::data {

namespace fs = std::filesystem;

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// offset + n as text, exact even where the sum would not fit in 64 bits.
std::string end_text(std::uint64_t offset, std::uint64_t n) {
  if (n > std::numeric_limits<std::uint64_t>::max() - offset)
    return std::to_string(offset) + " + " + std::to_string(n);
  return std::to_string(offset + n);
}

}  // namespace

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

void check_label(std::uint8_t label, const std::string& path, std::uint64_t offset, std::size_t record) {
  if (label >= kNumClasses)
    throw DataError(path + ": label " + std::to_string(label) + " at offset " + std::to_string(offset) +
                    " (record " + std::to_string(record) + "): expected a class in 0.." +
                    std::to_string(kNumClasses - 1));
}

ByteReader::ByteReader(const std::string& path, bool detect_gzip) : path_(path) {
  // O_NONBLOCK so that opening a FIFO returns at once; fstat then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    throw DataError(path + ": cannot stat: " + reason);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) throw DataError(path + ": expected a file, found a directory");
    throw DataError(path + ": expected a regular file, found " + kind_of(st.st_mode));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  file_ = ::fdopen(fd, "rb");
  if (!file_) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    throw DataError(path + ": cannot open: " + reason);
  }
  file_size_ = static_cast<std::uint64_t>(st.st_size);
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
            throw DataError(path_ + ": read error in the compressed file at offset " +
                            std::to_string(compressed_read_) + ": " + std::strerror(errno));
          gzip_cut_ = true;  // input ended before the gzip trailer
          break;
        }
        compressed_read_ += fed;
        zs_.next_in = in_.data();
        zs_.avail_in = static_cast<uInt>(fed);
      }
      int rc = inflate(&zs_, Z_NO_FLUSH);  // also checks each member's CRC-32 and length
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
      std::string problem = zs_.msg ? zs_.msg : zError(rc);
      if (problem == "incorrect data check")
        problem = "the CRC-32 in the gzip trailer does not match the decompressed data";
      else if (problem == "incorrect length check")
        problem = "the length (ISIZE) in the gzip trailer does not match the decompressed data";
      else
        problem = "corrupt gzip data: expected a valid deflate stream, zlib says '" + problem + "'";
      throw DataError(path_ + ": " + problem + " (compressed offset " + std::to_string(compressed_offset()) +
                      ", decompressed offset " + std::to_string(at) + ")");
    }
    total += piece - zs_.avail_out;
  }
  offset_ += total;
  return total;
}

void ByteReader::throw_truncated(std::uint64_t expected_end, std::uint64_t ends_at,
                                 const std::string& what) const {
  throw DataError(path_ + ": truncated: expected " + std::to_string(expected_end) + " bytes (" + what +
                  "), file ends at offset " + std::to_string(ends_at) +
                  (gzip_ ? " of the decompressed data" : "") +
                  (gzip_cut_ ? " (the gzip stream is cut short at compressed offset " +
                                   std::to_string(compressed_offset()) + ")"
                             : ""));
}

void ByteReader::require_available(std::uint64_t n, const std::string& what) const {
  if (!gzip_) {
    const std::uint64_t left = file_size_ > offset_ ? file_size_ - offset_ : 0;
    if (n > left)
      throw DataError(path_ + ": truncated: expected " + end_text(offset_, n) + " bytes (" + what +
                      "), file ends at offset " + std::to_string(file_size_));
    return;
  }
  const std::uint64_t most = file_size_ > std::numeric_limits<std::uint64_t>::max() / kMaxDeflateRatio
                                 ? std::numeric_limits<std::uint64_t>::max()
                                 : file_size_ * kMaxDeflateRatio;
  const std::uint64_t left = most > offset_ ? most - offset_ : 0;
  if (n > left)
    throw DataError(path_ + ": expected " + end_text(offset_, n) + " bytes of decompressed data (" + what +
                    "), more than a gzip file of " + std::to_string(file_size_) + " bytes can hold (deflate "
                    "expands at most " + std::to_string(kMaxDeflateRatio) + "x, to " + std::to_string(most) +
                    " bytes): the header lies or the file is cut");
}

void ByteReader::read_exactly(void* dst, std::size_t n, const std::string& what) {
  require_available(n, what);
  const std::uint64_t expected_end = offset_ + n;  // cannot wrap: require_available bounds it
  if (read(dst, n) < n) throw_truncated(expected_end, offset_, what);
}

void ByteReader::expect_end(const std::string& what) {
  unsigned char extra[1];
  std::uint64_t end = offset_;
  if (read(extra, 1) != 0) {
    std::string size = gzip_ ? "" : " (the file has " + std::to_string(file_size_) + " bytes)";
    throw DataError(path_ + ": trailing data: expected the file to end at offset " + std::to_string(end) +
                    " after " + what + ", found more bytes" + size);
  }
  if (gzip_ && !stream_done_)
    throw DataError(path_ + ": the gzip stream is cut short at compressed offset " +
                    std::to_string(compressed_offset()) + " (file size " + std::to_string(file_size_) +
                    "): expected the end of the deflate data and the 8-byte CRC-32 and length trailer after " +
                    what);
}

}  // namespace flowgrad::data
