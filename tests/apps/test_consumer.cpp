// flowgrad as a dependency: `meson install` puts headers and flowgrad.pc in place, and a
// tiny app (tests/consumer/main.cpp) compiles against them with pkg-config and runs.
#include <doctest/doctest.h>

#include "support.hpp"

#include <cstdio>
#include <filesystem>
#include <string>

namespace {
// Runs a shell command with stderr folded into stdout.
int run(const std::string& command, std::string& output) {
  const auto r = flowgrad::testing::run_command(command + " 2>&1");
  output = r.out;
  return r.code;
}
}  // namespace

TEST_CASE("an installed flowgrad builds a tiny app through pkg-config") {
  std::string out;
  if (run("command -v pkg-config && command -v meson && command -v c++", out) != 0) {
    MESSAGE("skipped: pkg-config, meson or c++ missing");
    return;
  }
  const auto dir = std::filesystem::temp_directory_path() / "flowgrad-consumer-test";
  std::filesystem::remove_all(dir);
  const std::string root = dir.string() + "/root";
  REQUIRE(run("meson install -C '" FLOWGRAD_BUILD_DIR "' --no-rebuild --quiet --destdir '" + root + "'", out) == 0);

  // Find the installed flowgrad.pc wherever libdir put it.
  std::string pc_dir;
  for (auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.path().filename() == "flowgrad.pc") pc_dir = e.path().parent_path().string();
  REQUIRE_MESSAGE(!pc_dir.empty(), "meson install wrote no flowgrad.pc");
  const bool headers = std::filesystem::exists(pc_dir + "/../../include/flowgrad/autograd/tensor.hpp") ||
                       std::filesystem::exists(pc_dir + "/../../../include/flowgrad/autograd/tensor.hpp");
  CHECK(headers);

  const std::string env = "PKG_CONFIG_PATH='" + pc_dir + "' PKG_CONFIG_SYSROOT_DIR='" + root + "' ";
  const std::string exe = dir.string() + "/fit_line";
  const int built = run(env + "c++ -std=c++17 -O1 '" FLOWGRAD_SOURCE_DIR "/tests/consumer/main.cpp' -o '" + exe +
                            "' $(" + env + "pkg-config --cflags --libs flowgrad)", out);
  INFO(out);
  REQUIRE(built == 0);
  const std::string libdir = pc_dir + "/..";  // flowgrad.pc sits in libdir/pkgconfig
  REQUIRE(run("LD_LIBRARY_PATH='" + libdir + "' '" + exe + "'", out) == 0);
  CHECK(out == "w = 3.000, b = -1.000\n");
  std::filesystem::remove_all(dir);
}
