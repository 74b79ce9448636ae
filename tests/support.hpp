// Small helpers shared by the test suites.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <random>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "autograd/atomic_file.hpp"
#include "autograd/tensor.hpp"

// Defined when built with AddressSanitizer (gcc or clang): a few tests of the allocator
// and of address-space limits cannot run under its own allocator.
#if defined(__SANITIZE_ADDRESS__)
#define FLOWGRAD_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FLOWGRAD_UNDER_ASAN 1
#endif
#endif

namespace flowgrad::testing {

// A fresh directory under the system's temp dir, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "flowgrad-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// The temp files of atomic writes left in a directory (after a finished write: none).
inline std::vector<std::string> temp_files_in(const std::filesystem::path& dir) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (is_temp_file_name(entry.path().filename().string())) found.push_back(entry.path().string());
  return found;
}

// Runs f, requires it to throw an E, and returns the message.
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected another exception type, got: " << e.what());
  }
  FAIL("expected an exception, nothing was thrown");
  return {};
}

// Runs a shell command; its exit status (128 + signal if killed) and its stdout.
struct CommandResult {
  int code;
  std::string out;
};
inline CommandResult run_command(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

// A tensor of uniform values in [lo, hi), reproducible from the seed.
template <class T>
Tensor<T> rand_tensor(const Shape& shape, unsigned seed, double lo = -1, double hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  for (auto& v : a) v = T(u(rng));
  return Tensor<T>(a);
}

}  // namespace flowgrad::testing
