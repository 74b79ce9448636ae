// `flowgrad bench` end to end: one JSON line with the reference's fields and ours, on
// tiny batches so it runs in about a second.
#include <doctest/doctest.h>

#include "support.hpp"

#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace {

struct Result {
  int code;
  std::string out, err;
};

Result bench(const std::string& args) {
  const std::string err_file = std::string(FLOWGRAD_BUILD_DIR) + "/test_bench.stderr";
  const std::string cmd =
      std::string(FLOWGRAD_BUILD_DIR) + "/apps/flowgrad bench " + args + " 2>" + err_file + " </dev/null";
  const auto r = flowgrad::testing::run_command(cmd);
  std::string err;
  char buf[4096];
  std::size_t n;
  if (FILE* e = std::fopen(err_file.c_str(), "r")) {
    while ((n = fread(buf, 1, sizeof buf, e)) > 0) err.append(buf, n);
    std::fclose(e);
  }
  std::remove(err_file.c_str());
  return {r.code, r.out, err};
}

}  // namespace

TEST_CASE("flowgrad bench prints the reference's fields plus RSS, GFLOP/s and the BLAS core") {
  const Result r = bench("--model glow --threads 1 --steps 2 --batch 4 --profile");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);  // exactly one JSON document on stdout
  CHECK(j.at("model") == "glow");
  CHECK(j.at("threads") == 1);
  CHECK(j.at("batch") == 4);
  CHECK(j.at("params") == 433968);  // the reference's Glow
  for (const char* k : {"train_step_ms_median", "train_step_ms_min", "forward_nograd_ms", "images_per_s",
                        "peak_rss_mb", "gflop_per_step", "gflops", "cpu_ms_per_step"})
    CHECK_MESSAGE(j.at(k).get<double>() > 0, k);
  CHECK(j.at("train_step_ms_min").get<double>() <= j.at("train_step_ms_median").get<double>());
  CHECK(!j.at("blas_core").get<std::string>().empty());
  // Glow at batch 4: 18.6 GFLOP per step at batch 64; the convolutions scale with the
  // batch, the 1x1 convolutions' small LU products (c x c matmuls) do not.
  CHECK(j.at("gflop_per_step").get<double>() == doctest::Approx(18.598683648 * 4 / 64).epsilon(1e-3));
  // --profile: the per-op table and the memory held by the graph, on stderr.
  CHECK(r.err.find("conv2d") != std::string::npos);
  CHECK(r.err.find("values alive at the end of forward") != std::string::npos);
}

TEST_CASE("flowgrad bench: NICE's parameter count and FLOPs") {
  const Result r = bench("--model nice --threads 1 --steps 1 --batch 2 --no-retain-memory");
  REQUIRE(r.code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j.at("params") == 19158352);
  // 4 MLPs of 392-1000-1000-1000-1000-1000-392: forward 2 * B * weights, backward twice
  // that, except the input gradient of the first coupling's first layer (its input is a
  // slice of the data, which does not require grad). B = 2.
  const double w = 392.0 * 1000 + 4 * 1000.0 * 1000 + 1000.0 * 392;
  const double first = 392.0 * 1000;
  CHECK(j.at("gflop_per_step").get<double>() == doctest::Approx(2 * 2 * (4 * 3 * w - first) / 1e9).epsilon(1e-9));
}

TEST_CASE("flowgrad bench refuses bad options") {
  for (const char* args : {"--model resnet", "--threads 0", "--steps 0", "--batch 0", "--model"}) {
    CAPTURE(args);
    const Result r = bench(args);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err.find("error") != std::string::npos);
  }
}
