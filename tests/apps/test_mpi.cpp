// Data-parallel training under mpirun: N ranks at batch B/N train exactly as one process at
// B does (the same images, noise, ActNorm init and summed gradient, up to float32 summation
// order), resume with another N, and a rank that fails ends them all without losing the
// last checkpoint. Skipped, with a message, when flowgrad was built without MPI.
#include <doctest/doctest.h>

#include <algorithm>

#include "app_test.hpp"

using flowgrad::testing::contains;
using flowgrad::testing::TempDir;
using namespace app_test;

namespace {

#ifdef FLOWGRAD_HAVE_MPI
constexpr bool kHaveMpi = true;
#else
constexpr bool kHaveMpi = false;
#endif

bool skip_without_mpi() {
  if (kHaveMpi) return false;
  MESSAGE("skipped: flowgrad was built without MPI (bash scripts/setup.sh --mpi, then ninja -C build)");
  return true;
}

// `flowgrad ARGS` on np ranks (np 0: a plain run, no mpirun). CI runs as root; a rank
// that hangs is ended by timeout and fails the test.
Run ranks(int np, const std::string& args) {
  if (np == 0) return flowgrad_cmd(args, "timeout 300 ");
  return flowgrad_cmd(args, "timeout 300 mpirun --allow-run-as-root --oversubscribe --bind-to none -np " +
                                std::to_string(np) + " ");
}

// |a - b| over the float tensors of two checkpoints whose names pass `keep`, sorted; and
// max |a| over them.
template <class Keep>
std::pair<std::vector<double>, double> differences(const std::string& a_path, const std::string& b_path, Keep keep) {
  const SafeTensors a = load_safetensors(a_path), b = load_safetensors(b_path);
  std::vector<double> diffs;
  double scale = 0;
  for (const auto& named : a.tensors) {  // a plain variable: clang refuses structured bindings in REQUIRE_MESSAGE
    const std::string& name = named.first;
    const auto& va = named.second;
    if (!keep(name)) continue;
    const auto* x = std::get_if<xt::xarray<float>>(&va);
    const auto* vb = b.find(name);
    REQUIRE_MESSAGE(vb, name);
    const auto* y = std::get_if<xt::xarray<float>>(vb);
    if (!x || !y) continue;
    REQUIRE(x->shape() == y->shape());
    for (std::size_t i = 0; i < x->size(); ++i) {
      diffs.push_back(double(std::abs(x->data()[i] - y->data()[i])));
      scale = std::max(scale, double(std::abs(x->data()[i])));
    }
  }
  REQUIRE(!diffs.empty());
  std::sort(diffs.begin(), diffs.end());
  return {diffs, scale};
}

double quantile(const std::vector<double>& sorted, double q) { return sorted[std::size_t(q * double(sorted.size() - 1))]; }

// max |a - b| and max |a|.
template <class Keep>
std::pair<double, double> max_difference(const std::string& a_path, const std::string& b_path, Keep keep) {
  const auto [diffs, scale] = differences(a_path, b_path, keep);
  return {diffs.back(), scale};
}

bool is_parameter(const std::string& name) { return name.rfind("adam.", 0) != 0 && name.rfind("ema.", 0) != 0; }
// Adam's first moment after one step is 0.1 x the gradient.
bool is_first_moment(const std::string& name) { return name.rfind("adam.exp_avg.", 0) == 0; }

std::string recipe(const std::string& model, const std::string& data, std::size_t batch) {
  return "train --model " + model + " --dataset mnist --data-dir " + data + tiny_model_options(model) +
         " --batch " + std::to_string(batch) + " --lr 1e-3 --warmup 1 --clip 0 --clip-factor 0 --threads 1";
}

std::string checkpoint_of(const fs::path& run) { return (run / "checkpoint.safetensors").string(); }

}  // namespace

TEST_CASE("mpirun -np 2 at batch 64 trains as one process at batch 64: gradient, 3 steps, 40 steps (class-conditional and variational dequantization too)") {
  if (skip_without_mpi()) return;
  TempDir tmp("flowgrad-mpi");
  write_idx_set(tmp / "data", 320, 64);  // 5 steps an epoch
  for (const std::string model : {"nice", "realnvp", "glow", "glow --conditional", "glow --dequantization variational"}) {
    CAPTURE(model);
    const std::string base = recipe(model.substr(0, model.find(' ')), (tmp / "data"), 64) +
                             (model.find(' ') == std::string::npos ? "" : model.substr(model.find(' ')));
    for (int steps : {1, 3, 40}) {
      CAPTURE(steps);
      std::string name = model;  // "glow --conditional" -> "glow_conditional"
      name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
      std::replace(name.begin(), name.end(), ' ', '_');
      const fs::path one = tmp / (name + "-one-" + std::to_string(steps)), two = tmp / (name + "-two-" + std::to_string(steps));
      const std::string args = base + " --steps " + std::to_string(steps);
      const Run r1 = ranks(0, args + " --out " + one.string());
      REQUIRE_MESSAGE(r1.code == 0, r1.out);
      const Run r2 = ranks(2, args + " --out " + two.string());
      REQUIRE_MESSAGE(r2.code == 0, r2.out);
      CHECK(contains(r2.out, "2 ranks x 1 thread (32 images a rank)"));
      if (steps == 1) {  // the summed gradient: float32 summation order only
        const auto found = max_difference(checkpoint_of(one), checkpoint_of(two), is_first_moment);
        const double diff = found.first, scale = found.second;
        CAPTURE(diff);
        CAPTURE(scale);
        MESSAGE(model, ": first-moment (0.1 x gradient) max diff ", diff, " of max ", scale);
        CHECK(diff <= 1e-5 * scale);
      } else if (steps == 3) {
        // Adam's first steps magnify rounding: a gradient within rounding of 0 moves its
        // parameter by about +-lr either way (lr 1e-3 here: at most ~3e-3 in 3 steps), and
        // the next gradients then differ a little everywhere. The tolerance: half of the
        // parameters within 1e-6, 99% within 2e-4, all within 2 x 3 x lr. (Measured on
        // the tiny Glow: 3e-8, 4e-5, 1.4e-3; NICE and Real NVP: 0, 4e-9, 1.5e-8. A step
        // on other images moves every parameter by ~lr: 1e-3.)
        const auto [mpi, scale] = differences(checkpoint_of(one), checkpoint_of(two), is_parameter);
        MESSAGE(model, ": |params(np 2) - params(1 process)| after 3 steps: median ", quantile(mpi, 0.5), ", 99th percentile ",
                quantile(mpi, 0.99), ", max ", mpi.back());
        CHECK(quantile(mpi, 0.5) <= 1e-6);
        CHECK(quantile(mpi, 0.99) <= 2e-4);
        CHECK(mpi.back() <= 6e-3);
      } else {
        const double bpd1 = test_bpd_printed(r1.out), bpd2 = test_bpd_printed(r2.out);
        CAPTURE(bpd1);
        CAPTURE(bpd2);
        MESSAGE(model, ": test bits/dim after 40 steps ", bpd1, " (1 process), ", bpd2, " (np 2)");
        CHECK(std::abs(bpd1 - bpd2) <= 0.005);
      }
    }
  }
}

TEST_CASE("mpirun: uneven shards are weighted by their size; a batch too small to split, or another command, is refused") {
  if (skip_without_mpi()) return;
  TempDir tmp("flowgrad-mpi-uneven");
  write_idx_set(tmp / "data", 126, 16);
  const std::string args = recipe("glow", (tmp / "data"), 63) + " --steps 1";
  REQUIRE(ranks(0, args + " --out " + (tmp / "one")).code == 0);
  const Run r = ranks(2, args + " --out " + (tmp / "two"));
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, "(31 images a rank)"));  // 31 and 32
  const auto found = max_difference(checkpoint_of(tmp / "one"), checkpoint_of(tmp / "two"), is_first_moment);
  const double diff = found.first, scale = found.second;
  CAPTURE(diff);
  CAPTURE(scale);
  CHECK(diff <= 1e-5 * scale);

  const Run tiny = ranks(3, recipe("glow", (tmp / "data"), 2) + " --steps 1 --out " + (tmp / "three"));
  CHECK(tiny.code != 0);
  CHECK(contains(tiny.out, "--batch 2: a batch of 2 cannot be split over 3 ranks"));
  CHECK_FALSE(fs::exists(tmp / "three/checkpoint.safetensors"));

  const Run sample = ranks(2, "sample " + (tmp / "one") + " --n 4 --out " + (tmp / "s.png"));
  CHECK(sample.code != 0);
  CHECK(contains(sample.out, "'sample' runs in one process: only train and bench run under mpirun"));
}

TEST_CASE("mpirun: rank 0 alone prints and writes; a run resumes with another number of ranks") {
  if (skip_without_mpi()) return;
  TempDir tmp("flowgrad-mpi-resume");
  write_idx_set(tmp / "data", 256, 32);
  // A constant learning rate: a resumed run given other limits would start a new cosine segment.
  const std::string base = recipe("realnvp", (tmp / "data"), 64) + " --lr-decay none";
  const fs::path straight = tmp / "straight", down = tmp / "down", up = tmp / "up";
  REQUIRE(ranks(0, base + " --steps 4 --out " + straight.string()).code == 0);

  const Run first = ranks(2, base + " --steps 2 --out " + down.string());
  REQUIRE_MESSAGE(first.code == 0, first.out);
  std::size_t headers = 0;
  for (std::size_t at = first.out.find("model: "); at != std::string::npos; at = first.out.find("model: ", at + 1)) ++headers;
  CHECK(headers == 1);
  CHECK(read_jsonl((down / "metrics.jsonl").string()).size() == 1);  // one row, not one a rank
  const Run resumed = ranks(0, "train --resume " + down.string() + " --steps 4");  // 2 ranks, then 1
  REQUIRE_MESSAGE(resumed.code == 0, resumed.out);
  REQUIRE(ranks(0, base + " --steps 2 --out " + up.string()).code == 0);
  const Run widened = ranks(2, "train --resume " + up.string() + " --steps 4 --threads 1");  // 1 rank, then 2
  REQUIRE_MESSAGE(widened.code == 0, widened.out);
  for (const fs::path& run : {down, up}) {
    CAPTURE(run);
    const auto [diffs, scale] = differences(checkpoint_of(straight), checkpoint_of(run), is_parameter);
    CHECK(quantile(diffs, 0.5) <= 1e-6);  // Real NVP: rounding only (0, 2e-9, 1.5e-8 measured)
    CHECK(quantile(diffs, 0.99) <= 2e-4);
    CHECK(diffs.back() <= 6e-3);
  }
}

TEST_CASE("mpirun: a rank that throws, dies or sees a NaN loss stops every rank; the last checkpoint stays") {
  if (skip_without_mpi()) return;
  TempDir tmp("flowgrad-mpi-faults");
  write_idx_set(tmp / "data", 128, 16);
  const std::string base = recipe("glow", (tmp / "data"), 16) + " --steps 6 --checkpoint-every 1 --debug-rank 1";
  struct Fault {
    std::string option, says;
  };
  for (const Fault& f : {Fault{"--debug-fail-at-step 3", "rank 1"}, Fault{"--debug-exit-at-step 3", ""},
                         Fault{"--debug-nan-at-step 3", "step 3: the loss is NaN: training diverged"}}) {
    CAPTURE(f.option);
    const fs::path run = tmp / ("run" + f.option.substr(8, 4));
    const Run r = ranks(2, base + " " + f.option + " --out " + run.string());
    CAPTURE(r.out);
    CHECK(r.code != 0);
    CHECK(r.code != 124);  // not ended by the timeout: no rank was left waiting
    if (!f.says.empty()) CHECK(contains(r.out, f.says));
    const SafeTensors last = load_safetensors(checkpoint_of(run));  // intact
    CHECK(last.metadata.at("step") == "2");
  }
}
