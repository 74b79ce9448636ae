// What the end-to-end tests of the `flowgrad` program share: running it as a subprocess,
// tiny IDX and CIFAR files written on the spot (8x8 grey images, a few dozen of them),
// tiny models, and comparing run directories.
#pragma once

#include <doctest/doctest.h>

#include "support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/safetensors.hpp"

namespace app_test {

namespace fs = std::filesystem;
using flowgrad::nn::load_safetensors;
using flowgrad::nn::SafeTensors;

inline const std::string kExe = FLOWGRAD_BUILD_DIR "/apps/flowgrad";

struct Run {
  int code;
  std::string out;  // stdout and stderr
};

inline Run flowgrad_cmd(const std::string& args, const std::string& prefix = "") {
  const std::string cmd = prefix + kExe + " " + args + " 2>&1 </dev/null";
  const auto r = flowgrad::testing::run_command(cmd);
  return {r.code, r.out};
}

using Bytes = std::vector<unsigned char>;

inline void put_u32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back((unsigned char)(v >> s));
}

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

// Images with some structure (gradients plus a class-dependent blob) and noise.
inline unsigned char pixel(std::size_t image, std::size_t c, std::size_t y, std::size_t x, std::size_t w) {
  std::uint32_t h = std::uint32_t(image * 7919 + c * 104729 + y * w + x) * 2654435761u;
  const int cls = int(image % 4);
  int v = int(20 * (y + x)) + (std::abs(int(y) - 2 - cls) + std::abs(int(x) - 3) < 3 ? 90 : 0) + int(h >> 27);
  return (unsigned char)std::min(255, v);
}

// train: n_train images, t10k: n_test images, both size x size, raw IDX.
inline void write_idx_set(const std::string& dir, std::size_t n_train = 48, std::size_t n_test = 20, std::size_t size = 8) {
  fs::create_directories(dir);
  for (auto [prefix, n] : {std::pair<std::string, std::size_t>{"train", n_train}, {"t10k", n_test}}) {
    Bytes images, labels;
    put_u32(images, 0x803), put_u32(images, std::uint32_t(n)), put_u32(images, std::uint32_t(size)),
        put_u32(images, std::uint32_t(size));
    put_u32(labels, 0x801), put_u32(labels, std::uint32_t(n));
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t y = 0; y < size; ++y)
        for (std::size_t x = 0; x < size; ++x) images.push_back(pixel(i + (prefix == "t10k" ? 1000 : 0), 0, y, x, size));
      labels.push_back((unsigned char)(i % 4));
    }
    write_file(dir + "/" + prefix + "-images-idx3-ubyte", images);
    write_file(dir + "/" + prefix + "-labels-idx1-ubyte", labels);
  }
}

inline void write_cifar_set(const std::string& dir, std::size_t per_file = 2, std::size_t n_test = 4) {
  const std::string d = dir + "/cifar-10-batches-bin";
  fs::create_directories(d);
  std::size_t image = 0;
  auto write = [&](const std::string& name, std::size_t n) {
    Bytes b;
    for (std::size_t i = 0; i < n; ++i, ++image) {
      b.push_back((unsigned char)(image % 10));
      for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t y = 0; y < 32; ++y)
          for (std::size_t x = 0; x < 32; ++x) b.push_back(pixel(image, c, y % 8, x % 8, 8));
    }
    write_file(d + "/" + name, b);
  };
  for (int i = 1; i <= 5; ++i) write("data_batch_" + std::to_string(i) + ".bin", per_file);
  write("test_batch.bin", n_test);
}

// A tiny Glow on the 8x8 set: 6 steps per epoch with batch 8.
inline std::string tiny_glow(const std::string& data, const std::string& out) {
  return "train --model glow --dataset mnist --data-dir " + data + " --out " + out +
         " --levels 2 --flow-steps 1 --hidden 8 --batch 8 --warmup 2 --threads 2";
}

inline std::string tiny_model_options(const std::string& model) {
  if (model == "glow") return " --levels 2 --flow-steps 1 --hidden 8";
  if (model == "realnvp") return " --levels 2 --couplings 1 --hidden 4 --blocks 1";
  return " --hidden 16 --layers 1 --couplings 2";
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

inline bool is_png(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char sig[8] = {};
  f.read(sig, 8);
  return f.good() && std::string(sig + 1, 3) == "PNG" && fs::file_size(path) > 100;
}

inline Bytes file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

inline bool same_tensors(const SafeTensors& a, const SafeTensors& b, std::string& why) {
  if (a.tensors.size() != b.tensors.size()) {
    why = "tensor counts differ";
    return false;
  }
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& [name, va] = a.tensors[i];
    const auto* vb = b.find(name);
    if (!vb) {
      why = name + " missing";
      return false;
    }
    const bool equal = std::visit(
        [&](const auto& x) {
          using A = std::decay_t<decltype(x)>;
          const A* y = std::get_if<A>(vb);
          return y && x.shape() == y->shape() &&
                 std::memcmp(x.data(), y->data(), x.size() * sizeof(typename A::value_type)) == 0;
        },
        va);
    if (!equal) {
      why = name + " differs";
      return false;
    }
  }
  return true;
}

inline double test_bpd_printed(const std::string& out) {
  const auto at = out.find("test bits/dim: ");
  REQUIRE(at != std::string::npos);
  return std::stod(out.substr(at + 15));
}


}  // namespace app_test
