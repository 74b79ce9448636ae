// apps/example_train.cpp, the loop a student copies, trains and samples on its own.
#include <doctest/doctest.h>

#include "app_test.hpp"

#include <cstdio>
#include <string>

using namespace flowgrad::testing;
using namespace app_test;

TEST_CASE("the example training program learns on a small IDX set and writes its samples") {
  TempDir tmp;
  write_idx_set(tmp / "data", 128);
  const std::string exe = FLOWGRAD_BUILD_DIR "/apps/example_train";
  const auto r = run_command(exe + " " + (tmp / "data") + " 60 " + (tmp / "s.png") + " 2>&1");
  CAPTURE(r.out);
  REQUIRE(r.code == 0);
  // "step 1  X bits/dim" ... "step 50  Y bits/dim": Y well below X.
  double first = 0, later = 0;
  REQUIRE(std::sscanf(r.out.c_str(), "step 1 %lf", &first) == 1);
  const auto at50 = r.out.find("step 50 ");
  REQUIRE(at50 != std::string::npos);
  REQUIRE(std::sscanf(r.out.c_str() + at50, "step 50 %lf", &later) == 1);
  CHECK(later < first - 0.5);
  CHECK(is_png(tmp / "s.png"));

  const auto bad = run_command(exe + " " + (tmp / "missing") + " 2>&1");
  CHECK(bad.code == 1);
  CHECK(contains(bad.out, "example_train: "));
  CHECK(contains(bad.out, "missing"));
}

TEST_CASE("the 2-D densities example fits all four and its densities integrate to about 1") {
  TempDir tmp;
  const std::string exe = FLOWGRAD_BUILD_DIR "/apps/density2d";
  const auto r = run_command(exe + " 600 " + (tmp / "d.png") + " 2>&1");
  CAPTURE(r.out);
  REQUIRE(r.code == 0);
  CHECK(is_png(tmp / "d.png"));
  std::size_t rows = 0;
  for (const char* name : {"two moons", "eight gaussians", "checkerboard", "rings"}) {
    const auto at = r.out.find(std::string(name) + " ");
    REQUIRE(at != std::string::npos);
    double before = 0, after = 0, integral = 0;
    long steps = 0;
    const char* line = r.out.c_str() + at + std::string(name).size();
    REQUIRE(std::sscanf(line, " -log p of 20,000 points: %lf at the start, %lf after %ld steps (nats); "
                              "integral of p over [-4, 4]^2: %lf", &before, &after, &steps, &integral) == 4);
    CAPTURE(name);
    CHECK(after < before - 0.1);  // it learned (rings, the hardest, gains about 0.2 nats by 600 steps)
    CHECK(integral > 0.9);      // a density: most of its mass on the grid, none made up
    CHECK(integral < 1.02);
    ++rows;
  }
  CHECK(rows == 4);
}
