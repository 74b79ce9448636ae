// flowgrad as a dependency, both ways a user takes it: `meson install` puts headers and
// flowgrad.pc in place and a tiny app (tests/consumer/main.cpp) compiles against them with
// pkg-config; and the same app builds flowgrad as a meson subproject.
#include <doctest/doctest.h>

#include "support.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

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

TEST_CASE("tests/consumer builds flowgrad as a meson subproject, optimised under a debug parent") {
  std::string out;
  if (run("command -v meson && command -v ninja", out) != 0) {
    MESSAGE("skipped: meson or ninja missing");
    return;
  }
  const auto dir = std::filesystem::temp_directory_path() / "flowgrad-subproject-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "subprojects");
  for (const char* file : {"meson.build", "main.cpp"})
    std::filesystem::copy_file(FLOWGRAD_SOURCE_DIR "/tests/consumer/" + std::string(file), dir / file);
  std::filesystem::create_directory_symlink(FLOWGRAD_SOURCE_DIR, dir / "subprojects" / "flowgrad");
  const std::string build = (dir / "build").string();
  // meson's default buildtype, debug: what a parent project gets unless it says otherwise.
  const int configured = run("cd '" + dir.string() + "' && meson setup build --buildtype=debug", out);
  INFO(out);
  REQUIRE(configured == 0);
  // Every compile of the library ends its optimisation flags with -O2.
  std::ifstream commands(build + "/compile_commands.json");
  const auto json = nlohmann::json::parse(commands);
  std::size_t library_files = 0;
  for (const auto& c : json) {
    const std::string file = c["file"], command = c["command"];
    if (file.find("subprojects/flowgrad/") == std::string::npos) continue;
    ++library_files;
    const auto o2 = command.rfind("-O2"), o0 = command.rfind("-O0");
    CHECK_MESSAGE((o2 != std::string::npos && (o0 == std::string::npos || o2 > o0)), file);
  }
  CHECK(library_files > 20);
  const int built = run("ninja -C '" + build + "'", out);
  INFO(out);
  REQUIRE(built == 0);
  REQUIRE(run("'" + build + "/fit_line'", out) == 0);
  CHECK(out == "w = 3.000, b = -1.000\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a declared template that its .cpp does not instantiate fails the build, naming the line to add") {
  std::string out;
  if (run("command -v python3", out) != 0) {
    MESSAGE("skipped: python3 missing");
    return;
  }
  const auto dir = std::filesystem::temp_directory_path() / "flowgrad-instantiation-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "autograd");
  const auto write = [&](const std::string& name, const std::string& text) { std::ofstream(dir / name) << text; };
  write("autograd/softsign.hpp",
        "#pragma once\n#include \"autograd/tensor.hpp\"\nnamespace flowgrad {\n"
        "template <class T> Tensor<T> softsign(const Tensor<T>& a);  // x / (1 + |x|)\n"
        "template <class T> Tensor<T> elu(const Tensor<T>& a, ScalarArg<T> alpha = 1);\n}\n");
  const std::string body = "#include \"autograd/softsign.hpp\"\n#include \"autograd/instantiate.hpp\"\n"
                           "namespace flowgrad {\ntemplate <class T> Tensor<T> softsign(const Tensor<T>& a) { return a; }\n"
                           "template <class T> Tensor<T> elu(const Tensor<T>& a, ScalarArg<T>) { return a; }\n";
  const std::string check = "python3 '" FLOWGRAD_SOURCE_DIR "/scripts/check_instantiations.py' --root '" +
                            dir.string() + "' '" + (dir / "stamp.hpp").string() + "' '" +
                            (dir / "autograd/softsign.hpp").string() + "' '" + (dir / "autograd/softsign.cpp").string() + "'";

  write("autograd/softsign.cpp", body + "#define SOFTSIGN(T) template Tensor<T> softsign(const Tensor<T>&);\n"
                                        "FLOWGRAD_FOR_EACH_SCALAR(SOFTSIGN)\n}\n");
  CHECK(run(check, out) != 0);
  INFO(out);
  CHECK(out.find("autograd/softsign.hpp:5: elu is declared here but autograd/softsign.cpp does not instantiate it "
                 "for float and double; add `template Tensor<T> elu(const Tensor<T>& a, T alpha);`") != std::string::npos);
  CHECK(out.find("softsign is declared") == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "stamp.hpp"));

  write("autograd/softsign.cpp", body + "#define SOFTSIGN(T) template Tensor<T> softsign(const Tensor<T>&); \\\n"
                                        "  template Tensor<T> elu(const Tensor<T>&, T);\nFLOWGRAD_FOR_EACH_SCALAR(SOFTSIGN)\n}\n");
  CHECK(run(check, out) == 0);
  CHECK(std::filesystem::exists(dir / "stamp.hpp"));
  std::filesystem::remove_all(dir);
}
