// Small IDX, gzip and CIFAR-10 files for the reader tests: what they hold is known
// exactly, and each helper can be made to lie.
#pragma once

#include <doctest/doctest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "datasets/cifar.hpp"
#include "datasets/dataset.hpp"
#include "datasets/idx.hpp"
#include "../support.hpp"

using namespace flowgrad::data;
namespace fs = std::filesystem;
using flowgrad::testing::contains;
using flowgrad::testing::TempDir;
using Bytes = std::vector<std::uint8_t>;

inline void write_raw(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

// A gzip file as gzip(1) writes it (level 1..9; 6 is gzip's default).
inline void write_gz_level(const std::string& path, const Bytes& bytes, int level) {
  gzFile f = gzopen(path.c_str(), ("wb" + std::to_string(level)).c_str());
  REQUIRE(f != nullptr);
  if (!bytes.empty()) REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

inline void write_gz(const std::string& path, const Bytes& bytes) { write_gz_level(path, bytes, 6); }

inline Bytes read_raw(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

inline void put32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(std::uint8_t(v >> s));
}

inline std::uint8_t pixel_of(std::size_t i, std::size_t k) { return std::uint8_t((i * 131 + k * 7) % 256); }

// n images of h x w with header dims (hn, hh, hw), which may lie.
inline Bytes idx_images(std::size_t n, std::size_t h, std::size_t w, std::uint32_t magic = kIdxImagesMagic) {
  Bytes b;
  put32(b, magic);
  put32(b, std::uint32_t(n));
  put32(b, std::uint32_t(h));
  put32(b, std::uint32_t(w));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < h * w; ++k) b.push_back(pixel_of(i, k));
  return b;
}

inline Bytes idx_labels(std::size_t n) {
  Bytes b;
  put32(b, kIdxLabelsMagic);
  put32(b, std::uint32_t(n));
  for (std::size_t i = 0; i < n; ++i) b.push_back(std::uint8_t(i % 10));
  return b;
}

inline Bytes cifar_records(std::size_t n, std::size_t seed) {
  Bytes b;
  for (std::size_t i = 0; i < n; ++i) {
    b.push_back(std::uint8_t((i + seed) % 10));
    for (std::size_t k = 0; k < kCifarImageBytes; ++k) b.push_back(pixel_of(i + seed, k));
  }
  return b;
}

template <class F>
std::string data_error_of(F&& f) { return flowgrad::testing::error_of<DataError>(f); }
