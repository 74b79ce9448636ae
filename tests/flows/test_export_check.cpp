// Cross-check against the PyTorch reference: our bench models' log p and gradients,
// written by export_check, must pass torch_flows.py --verify (F64 tolerance 1e-8).
#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "flows/export_check.hpp"
#include "flows/models.hpp"
#include "nn/safetensors.hpp"

using namespace flowgrad;

namespace {
std::string reference_script() {
  if (const char* env = std::getenv("FLOWGRAD_TORCH_REFERENCE")) return env;
  return FLOWGRAD_SOURCE_DIR "/../shared/reference/torch_flows.py";
}

// Runs a shell command; returns its exit status and stdout.
std::pair<int, std::string> run(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), int(buf.size()), pipe)) out += buf.data();
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Empty when the cross-check can run, else why not.
std::string skip_reason() {
  const std::string script = reference_script();
  if (!std::filesystem::exists(script)) return "reference not found at " + script;
  if (!std::filesystem::exists("/usr/bin/python3")) return "/usr/bin/python3 not found";
  auto [rc, out] = run("/usr/bin/python3 -c 'import torch, numpy'");
  if (rc != 0) return "/usr/bin/python3 has no torch/numpy: " + out;
  return "";
}
}  // namespace

TEST_CASE("export-check files hold exactly the reference's names, plus input, logp and grads") {
  for (std::string name : {"realnvp", "glow"}) {
    const auto path = std::filesystem::temp_directory_path() / ("flowgrad_names_" + name + ".safetensors");
    auto summary = flows::export_check(name, path.string());
    auto file = nn::load_safetensors(path.string());
    auto model = flows::make_bench_model<double>(name);
    std::size_t expected = 2;  // __input__ and __logp__, plus the state and one grad per parameter
    for (auto& [n, t] : model->state())
      if (model->reference_name(n)) ++expected;
    for (auto& [n, t] : model->named_parameters()) {
      CHECK(file.find("grad." + n) != nullptr);
      ++expected;
    }
    CHECK(file.tensors.size() == expected);
    CHECK(summary.tensors == expected);
    CHECK(file.find("__input__") != nullptr);
    CHECK(file.find("levels.0.0.0.initialized") == nullptr);
    CHECK(nn::shape_of(*file.find("__logp__")) == Shape{4});
    std::filesystem::remove(path);
  }
}

TEST_CASE("PyTorch cross-check: log p and every gradient match torch_flows.py --verify") {
  const std::string why = skip_reason();
  if (!why.empty()) {
    MESSAGE("skipped: " << why);
    return;
  }
  for (std::string name : {"nice", "realnvp", "glow"}) {
    CAPTURE(name);
    const auto path = std::filesystem::temp_directory_path() / ("flowgrad_export_" + name + ".safetensors");
    flows::export_check(name, path.string());
    auto [rc, out] = run("OPENBLAS_NUM_THREADS=1 /usr/bin/python3 " + reference_script() + " --model " +
                         name + " --verify " + path.string());
    MESSAGE(name << ": " << out);
    CHECK(rc == 0);
    CHECK(out.find("\"ok\": true") != std::string::npos);
    std::filesystem::remove(path);
  }
}
