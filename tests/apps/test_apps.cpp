// End-to-end tests of the `flowgrad` program, run as a subprocess on tiny IDX and CIFAR
// files written here (8x8 grey images, a few dozen of them), with tiny models.
#include <doctest/doctest.h>

#include "app_test.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

using flowgrad::testing::contains;
using flowgrad::testing::TempDir;
using namespace app_test;

TEST_CASE("flowgrad --help, --version and each subcommand's --help") {
  Run r = flowgrad_cmd("--help");
  CHECK(r.code == 0);
  for (const char* sub : {"train", "eval", "sample", "interpolate", "export-check"}) CHECK(contains(r.out, sub));
  r = flowgrad_cmd("--version");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "flowgrad "));
  for (const char* sub : {"train", "eval", "sample", "interpolate", "export-check"}) {
    CAPTURE(sub);
    r = flowgrad_cmd(std::string(sub) + " --help");
    CHECK(r.code == 0);
    CHECK(contains(r.out, "Usage:"));
  }
  r = flowgrad_cmd("train --help");
  for (const char* opt : {"--model", "--dataset", "--data-dir", "--out", "--resume", "--bench-config", "--batch", "--lr",
                          "--warmup", "--clip", "--epochs", "--steps", "--minutes", "--threads", "--seed", "--eval-every"})
    CHECK(contains(r.out, opt));
  CHECK_FALSE(contains(r.out, "--debug-nan-at-step"));  // a test hook, hidden
}

TEST_CASE("usage errors exit 1 with a message, before any work, leaving no run directory") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run";
  const std::string base = tiny_glow(tmp / "data", out) + " --steps 1";
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"", "A subcommand is required"},
      {"train --bogus", "--bogus"},
      {base + " --batch 0", "--batch must be positive"},
      {base + " --batch -3", "--batch"},
      {base + " --lr -0.1", "--lr must be a positive number"},
      {base + " --lr nan", "--lr must be a positive number"},
      {base + " --warmup -5", "--warmup"},
      {base + " --clip -1", "--clip"},
      {base + " --minutes -2", "--minutes"},
      {base + " --batch 100", "larger than the 48 images"},
      {base + " --levels 64", "--levels must be at most 16, got 64"},
      {base + " --hidden 34359738368", "--hidden must be at most 4096"},
      {base + " --eval-every 18446744073709551615", "--eval-every must be at most"},
      {base + " --steps 18446744073709551615", "--steps must be at most"},
      {base + " --minutes 1e300", "--minutes must be in [0, 1e6]"},
      {base + " --batch 99999999", "--batch must be at most 65536"},
      {base + " --couplings 3", "--couplings does not apply to --model glow"},
      {"train --model glow --dataset fashion-mnist --levels 3 --out " + out, "does not fit 1x28x28"},
      {"train --model glow --dataset mnist --data-dir " + (tmp / "data") + " --levels 4 --out " + out,
       "divisible by 2^4"},
      {"train --model realnvp --dataset cifar10 --data-dir x --levels 7 --out " + out, "does not fit 3x32x32"},
      {"train --model nicer --dataset mnist --out " + out, "--model"},
      {"train --model glow --dataset mnist --data-dir " + (tmp / "data"), "--out is required"},
      {"train --model glow --bench-config --hidden 3 --dataset mnist --data-dir x --out " + out, "--bench-config"},
      {"eval", "run is required"},
      {"sample " + out, "--out is required"},
      {"export-check --model glow", "--out is required"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.args);
    Run r = flowgrad_cmd(c.args);
    CAPTURE(r.out);
    CHECK(r.code == 1);
    CHECK(contains(r.out, "flowgrad: error: "));
    CHECK(contains(r.out, c.expect));
    CHECK_FALSE(fs::exists(out));
  }
}

TEST_CASE("bad or missing data: the data layer's message naming the file, exit 1, nothing written") {
  TempDir tmp;
  const std::string out = tmp / "run";
  auto check_refused = [&](const std::string& args, const std::string& file) {
    CAPTURE(args);
    Run r = flowgrad_cmd(args);
    CAPTURE(r.out);
    CHECK(r.code == 1);
    CHECK(contains(r.out, "flowgrad: error: "));
    CHECK(contains(r.out, file));
    // The run directory: never created, and an empty one given beforehand stays empty.
    CHECK((!fs::exists(out) || fs::is_empty(out)));
  };
  // Missing directory.
  check_refused(tiny_glow(tmp / "nowhere", out) + " --steps 1", "nowhere");
  // Truncated training images.
  write_idx_set(tmp / "truncated");
  {
    Bytes b = file_bytes(tmp / "truncated/train-images-idx3-ubyte");
    b.resize(b.size() - 10);
    write_file(tmp / "truncated/train-images-idx3-ubyte", b);
  }
  check_refused(tiny_glow(tmp / "truncated", out) + " --steps 1", "train-images-idx3-ubyte");
  // A bad magic number in the test labels, into an existing empty run directory.
  write_idx_set(tmp / "badmagic");
  {
    Bytes b = file_bytes(tmp / "badmagic/t10k-labels-idx1-ubyte");
    b[3] = 0x7;
    write_file(tmp / "badmagic/t10k-labels-idx1-ubyte", b);
  }
  fs::create_directories(out);
  check_refused(tiny_glow(tmp / "badmagic", out) + " --steps 1", "t10k-labels-idx1-ubyte");
  fs::remove(out);
  // A missing test file.
  write_idx_set(tmp / "notest");
  fs::remove(tmp / "notest/t10k-images-idx3-ubyte");
  check_refused(tiny_glow(tmp / "notest", out) + " --steps 1", "t10k-images-idx3-ubyte");
  // A CIFAR batch whose size is not a whole number of records.
  write_cifar_set(tmp / "cifar");
  {
    Bytes b = file_bytes(tmp / "cifar/cifar-10-batches-bin/test_batch.bin");
    b.resize(b.size() - 1);
    write_file(tmp / "cifar/cifar-10-batches-bin/test_batch.bin", b);
  }
  check_refused("train --model glow --dataset cifar10 --data-dir " + (tmp / "cifar") + " --out " + out +
                    " --levels 1 --flow-steps 1 --hidden 4 --batch 2 --steps 1",
                "test_batch.bin");
  // An existing non-empty directory is not overwritten.
  fs::create_directories(out);
  write_file(out + "/keep.txt", {'x'});
  write_idx_set(tmp / "good");
  Run r = flowgrad_cmd(tiny_glow(tmp / "good", out) + " --steps 1");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "--resume"));
  CHECK(fs::exists(out + "/keep.txt"));
  CHECK_FALSE(fs::exists(out + "/checkpoint.safetensors"));
}

TEST_CASE("train writes every artefact; eval, sample and interpolate work on the run") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run";
  Run r = flowgrad_cmd(tiny_glow(tmp / "data", out) + " --epochs 2");
  CAPTURE(r.out);
  REQUIRE(r.code == 0);
  CHECK_FALSE(contains(r.out, "\r"));  // not a terminal: plain log lines, no progress bar
  CHECK(contains(r.out, "step 1 "));
  CHECK(contains(r.out, "test bits/dim: "));

  // metrics.jsonl: one row per evaluation (each epoch's end), every field present.
  const auto rows = read_jsonl(out + "/metrics.jsonl");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["step"] == 6);
  CHECK(rows[1]["step"] == 12);
  CHECK(rows[1]["epoch"].get<double>() == doctest::Approx(2.0));
  for (const auto& row : rows) {
    for (const char* key : {"step", "epoch", "seconds", "train_bpd", "test_bpd"}) CHECK(row.contains(key));
    CHECK(std::isfinite(row["test_bpd"].get<double>()));
    CHECK(std::isfinite(row["train_bpd"].get<double>()));
  }
  CHECK(rows[1]["test_bpd"].get<double>() == doctest::Approx(test_bpd_printed(r.out)).epsilon(1e-4));
  CHECK(is_png(out + "/samples_T0.7.png"));
  CHECK(is_png(out + "/samples_T1.0.png"));
  std::ifstream svg(out + "/curve.svg");
  std::string svg_text((std::istreambuf_iterator<char>(svg)), {});
  CHECK(contains(svg_text, "<svg"));
  CHECK(contains(svg_text, "polyline"));
  const auto model = nlohmann::json::parse(file_bytes(out + "/config.json"))["model"];
  CHECK(model["name"] == "glow");
  CHECK(model["scale_clamp"] == 2);  // the app's form: every scale bounded in the sampling direction
  CHECK(model["prior_scale_cap"] == 2);
  CHECK(contains(r.out, "split priors' sigma below e^2"));

  // The checkpoint: model + Adam state + metadata; ActNorm's init flags are set.
  const SafeTensors ck = load_safetensors(out + "/checkpoint.safetensors");
  CHECK(ck.metadata.at("step") == "12");
  CHECK(ck.metadata.at("format") == "flowgrad-train-checkpoint-1");
  const auto config = nlohmann::json::parse(ck.metadata.at("config"));
  CHECK(config["model"]["hidden"] == 8);
  CHECK(config["train"]["batch"] == 8);
  for (const char* key : {"rng", "noise_rng", "shuffle_rng", "epoch", "batch_in_epoch"}) CHECK(ck.metadata.count(key));
  std::size_t flags = 0, adam = 0;
  for (const auto& [name, v] : ck.tensors) {
    if (name.size() > 11 && name.compare(name.size() - 11, 11, "initialized") == 0) {
      ++flags;
      CHECK(flowgrad::nn::float_array<float>(v, name)() == 1.0f);
    }
    if (name.rfind("adam.", 0) == 0) ++adam;
  }
  CHECK(flags == 2);  // one ActNorm per step, 2 levels x 1 step
  CHECK(adam > 0);

  // eval reproduces the last evaluation exactly (same fixed noise), from the directory or the file.
  Run e = flowgrad_cmd("eval " + out + " --threads 1");
  CAPTURE(e.out);
  REQUIRE(e.code == 0);
  CHECK(test_bpd_printed(e.out) == doctest::Approx(rows[1]["test_bpd"].get<double>()).epsilon(1e-4));
  e = flowgrad_cmd("eval " + out + "/checkpoint.safetensors");
  CHECK(e.code == 0);

  Run s = flowgrad_cmd("sample " + out + " --temperature 0.5 --n 10 --out " + (tmp / "s.png"));
  CAPTURE(s.out);
  CHECK(s.code == 0);
  CHECK(is_png(tmp / "s.png"));
  // The count of non-finite samples is always reported, zero included.
  CHECK((contains(s.out, "all 10 samples finite") || contains(s.out, " of 10 samples were not finite")));

  Run i = flowgrad_cmd("interpolate " + out + " --pairs 2 --steps 5 --out " + (tmp / "i.png"));
  CAPTURE(i.out);
  REQUIRE(i.code == 0);
  CHECK(is_png(tmp / "i.png"));
  const auto at = i.out.find("reconstruction error at the ends: ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(i.out.substr(at + 34)) < 1e-3);

  Run bad = flowgrad_cmd("interpolate " + out + " --pairs 20 --out " + (tmp / "j.png"));
  CHECK(bad.code == 1);
  CHECK(contains(bad.out, "--pairs"));
  bad = flowgrad_cmd("sample " + (tmp / "nothing-here") + " --out " + (tmp / "k.png"));
  CHECK(bad.code == 1);
  CHECK(contains(bad.out, "nothing-here"));
}

TEST_CASE("resume gives bit-identical parameters, optimizer state and average to an uninterrupted run") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  // The reference's recipe for NICE; cosine decay, spike clipping, a moving average and
  // Adamax for the others.
  for (const std::string model : {"glow", "realnvp", "nice"}) {
    CAPTURE(model);
    const std::string recipe = model == "nice" ? " --lr-decay none --clip 100 --clip-factor 0 --ema 0 --optimizer adam"
                                               : " --lr-decay cosine --clip 0 --clip-factor 2 --ema 0.9 --optimizer adamax";
    auto cmd = [&](const std::string& out) {
      return "train --model " + model + " --dataset mnist --data-dir " + (tmp / "data") + " --out " + out +
             tiny_model_options(model) + recipe + " --batch 8 --warmup 3 --flip --threads 2";  // flips draw too
    };
    // 8 steps straight, against an interruption after step 3 and a resume to 8: crosses an
    // epoch end (6 steps).
    Run a = flowgrad_cmd(cmd(tmp / (model + "-a")) + " --steps 8");
    CAPTURE(a.out);
    REQUIRE(a.code == 0);
    Run b1 = flowgrad_cmd(cmd(tmp / (model + "-b")) + " --steps 8 --debug-interrupt-at-step 3");
    CAPTURE(b1.out);
    REQUIRE(b1.code == 130);
    Run b2 = flowgrad_cmd("train --resume " + (tmp / (model + "-b")) + " --threads 2");
    CAPTURE(b2.out);
    REQUIRE(b2.code == 0);
    CHECK(contains(b2.out, "resumed at step 3"));
    const SafeTensors ca = load_safetensors(tmp / (model + "-a/checkpoint.safetensors"));
    const SafeTensors cb = load_safetensors(tmp / (model + "-b/checkpoint.safetensors"));
    std::string why;
    CHECK_MESSAGE(same_tensors(ca, cb, why), why);
    CHECK((ca.find("ema.updates") != nullptr) == (model != "nice"));
    CHECK(cb.metadata.at("step") == "8");
    for (const char* key : {"rng", "noise_rng", "shuffle_rng", "epoch", "batch_in_epoch", "schedule_start",
                            "schedule_end", "grad_norm_average", "clipped_steps"}) {
      CAPTURE(key);
      CHECK(ca.metadata.at(key) == cb.metadata.at(key));
    }
    // The same evaluations at the same steps: step 6 (epoch end) and 8 (the end).
    const auto ra = read_jsonl(tmp / (model + "-a/metrics.jsonl"));
    const auto rb = read_jsonl(tmp / (model + "-b/metrics.jsonl"));
    REQUIRE(ra.size() == 2);
    REQUIRE(rb.size() == 2);
    for (int k = 0; k < 2; ++k) {
      CHECK(ra[k]["step"] == rb[k]["step"]);
      CHECK(ra[k]["test_bpd"] == rb[k]["test_bpd"]);
      CHECK(ra[k]["lr"] == rb[k]["lr"]);
    }
    CHECK(ra[1]["train_bpd"] == rb[1]["train_bpd"]);
  }
  // Resuming a finished run does nothing and says so.
  Run done = flowgrad_cmd("train --resume " + (tmp / "glow-b"));
  CHECK(done.code == 0);
  CHECK(contains(done.out, "already complete"));
}

TEST_CASE("the schedule: cosine to 0 at the end of a step budget; a longer budget on resume warms up again") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run";
  // 6 steps per epoch; lr 0.01, warmup 2 steps, cosine to 0 at step 6.
  Run r = flowgrad_cmd(tiny_glow(tmp / "data", out) + " --lr 0.01 --warmup 2 --lr-decay cosine --steps 6 --eval-every 1");
  CAPTURE(r.out);
  REQUIRE(r.code == 0);
  auto rows = read_jsonl(out + "/metrics.jsonl");
  REQUIRE(rows.size() == 6);
  // lr of step k (from 0): 0.01 * (k + 1) / 2 for k < 2, then 0.005 (1 + cos(pi (k - 2) / 4)).
  const double want[6] = {0.005, 0.01, 0.01, 0.005 * (1 + std::cos(M_PI / 4)), 0.005, 0.005 * (1 + std::cos(3 * M_PI / 4))};
  for (int k = 0; k < 6; ++k) CHECK(rows[k]["lr"].get<double>() == doctest::Approx(want[k]).epsilon(1e-12));

  // Ten steps more: a new segment from step 6, warming up over 2 steps again, 0 at step 16.
  r = flowgrad_cmd("train --resume " + out + " --steps 16");
  CAPTURE(r.out);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "warms up again"));
  rows = read_jsonl(out + "/metrics.jsonl");
  REQUIRE(rows.size() == 16);
  CHECK(rows[6]["lr"].get<double>() == doctest::Approx(0.005));
  CHECK(rows[7]["lr"].get<double>() == doctest::Approx(0.01));
  CHECK(rows[11]["lr"].get<double>() == doctest::Approx(0.005 * (1 + std::cos(M_PI * 3 / 8))));
  SafeTensors ck = load_safetensors(out + "/checkpoint.safetensors");
  CHECK(ck.metadata.at("schedule_start") == "6");
  CHECK(ck.metadata.at("schedule_end") == "16");

  // A tampered schedule is refused, naming the key.
  for (auto key_value : {std::pair<const char*, const char*>{"schedule_end", "-3"}, {"schedule_start", "99"},
                         {"grad_norm_average", "nan"}}) {
    const auto [key, value] = key_value;
    CAPTURE(key_value.first);  // not a structured binding: clang 14 cannot capture one
    SafeTensors bad = ck;
    bad.metadata[key] = value;
    flowgrad::nn::save_safetensors(out + "/checkpoint.safetensors", bad.tensors, bad.metadata);
    r = flowgrad_cmd("train --resume " + out + " --steps 20");
    CHECK(r.code == 1);
    CHECK(contains(r.out, std::string("'") + key + "'"));
  }
}

TEST_CASE("a time budget plans its steps once after the warmup, stores them, and stops there") {
  TempDir tmp;
  write_idx_set(tmp / "data", 480);  // 60 steps per epoch: fewer evaluations
  const std::string out = tmp / "run";
  // A planned step time of 0.5 s in a 1-minute budget: far fewer steps than the tiny model
  // could do, so the plan, not the clock, ends the run.
  Run r = flowgrad_cmd(tiny_glow(tmp / "data", out) +
                       " --warmup 20 --lr-decay cosine --ema 0.99 --minutes 1 --debug-step-seconds 0.5");
  CAPTURE(r.out);
  REQUIRE(r.code == 0);
  // "step K: planned N steps ...", after the warmup and a tenth of the budget.
  const auto at = r.out.find(": planned ");
  REQUIRE(at != std::string::npos);
  const long planned_at = std::stol(r.out.substr(r.out.rfind("step ", at) + 5));
  std::string number = r.out.substr(at + 10, r.out.find(" steps", at) - at - 10);
  number.erase(std::remove(number.begin(), number.end(), ','), number.end());  // "1,234"
  const long planned = std::stol(number);
  CHECK(planned_at >= 20);
  CHECK(planned - planned_at > 80);
  CHECK(planned - planned_at <= 108);  // 54 s or less left / 0.5 s, less the evaluations
  const SafeTensors ck = load_safetensors(out + "/checkpoint.safetensors");
  CHECK(ck.metadata.at("schedule_end") == std::to_string(planned));
  CHECK(ck.metadata.at("step") == std::to_string(planned));
  const auto rows = read_jsonl(out + "/metrics.jsonl");
  CHECK(rows.back()["step"] == planned);
  CHECK(rows.back()["lr"].get<double>() < 1e-5);  // decayed (nearly) to 0 at the end

  // Evaluation uses the averaged weights, as the run's own evaluations did.
  Run e = flowgrad_cmd("eval " + out);
  CAPTURE(e.out);
  REQUIRE(e.code == 0);
  CHECK(test_bpd_printed(e.out) == doctest::Approx(rows.back()["test_bpd"].get<double>()).epsilon(1e-5));
  CHECK(test_bpd_printed(e.out) == doctest::Approx(test_bpd_printed(r.out)).epsilon(1e-4));
}

TEST_CASE("a run directory written before the recipe options existed still evaluates, samples and resumes") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run";
  REQUIRE(flowgrad_cmd(tiny_glow(tmp / "data", out) + " --steps 3 --lr 0.001 --lr-decay none --ema 0 --clip 100 --clip-factor 0 "
                                                      "--optimizer adam --scale-clamp 0 --eval-every 3").code == 0);
  // What the previous version wrote: no recipe fields in the config, no schedule metadata.
  SafeTensors ck = load_safetensors(out + "/checkpoint.safetensors");
  auto config = nlohmann::json::parse(ck.metadata.at("config"));
  for (const char* key : {"scale_clamp", "net_actnorm", "prior_scale_cap"}) config["model"].erase(key);
  for (const char* key : {"optimizer", "weight_decay", "lr_decay", "ema", "clip_factor"}) config["train"].erase(key);
  ck.metadata["config"] = config.dump();
  for (const char* key : {"schedule_start", "schedule_end", "grad_norm_average", "clipped_steps"}) ck.metadata.erase(key);
  flowgrad::nn::save_safetensors(out + "/checkpoint.safetensors", ck.tensors, ck.metadata);

  Run e = flowgrad_cmd("eval " + out);
  CAPTURE(e.out);
  CHECK(e.code == 0);
  CHECK(contains(e.out, "sigmoid scale"));  // the old form of the coupling
  Run s = flowgrad_cmd("sample " + out + " --out " + (tmp / "s.png"));
  CHECK(s.code == 0);
  Run r = flowgrad_cmd("train --resume " + out + " --steps 5");
  CAPTURE(r.out);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "adam lr 0.001, warmup 2 steps, clip 100,"));  // the old recipe
  const auto resumed = nlohmann::json::parse(load_safetensors(out + "/checkpoint.safetensors").metadata.at("config"));
  CHECK(resumed["train"]["lr_decay"] == "none");
  CHECK(resumed["train"]["ema"] == 0);
  CHECK(resumed["model"]["scale_clamp"] == 0);
  CHECK(resumed["model"]["prior_scale_cap"] == 0);  // the old form of the split prior
}

TEST_CASE("a non-finite loss stops training, names the step, keeps the last checkpoint, exits 1") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run";
  Run r = flowgrad_cmd(tiny_glow(tmp / "data", out) + " --steps 20 --checkpoint-every 2 --debug-nan-at-step 5");
  CAPTURE(r.out);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "step 5: the loss is NaN"));
  CHECK(contains(r.out, "--lr"));
  CHECK(contains(r.out, "--warmup"));
  CHECK(contains(r.out, "(step 4)"));
  const SafeTensors ck = load_safetensors(out + "/checkpoint.safetensors");
  CHECK(ck.metadata.at("step") == "4");
  for (const auto& entry : ck.tensors) {
    const auto& [name, v] = entry;
    CAPTURE(entry.first);  // not a structured binding: clang 14 cannot capture one
    if (flowgrad::nn::dtype_of(v) != flowgrad::nn::DType::F32) continue;  // Adam's step counts
    const auto a = flowgrad::nn::float_array<float>(v, name);
    bool finite = true;
    for (float x : a) finite = finite && std::isfinite(x);
    CHECK(finite);
  }
  // The kept checkpoint resumes.
  Run resumed = flowgrad_cmd("train --resume " + out + " --steps 6");
  CAPTURE(resumed.out);
  CHECK(resumed.code == 0);

  // An absurd learning rate diverges for real.
  const std::string out2 = tmp / "run2";
  Run wild = flowgrad_cmd(tiny_glow(tmp / "data", out2) + " --steps 30 --lr 1e6 --warmup 1");
  CAPTURE(wild.out);
  CHECK(wild.code == 1);
  CHECK(contains(wild.out, "training diverged"));
  CHECK(contains(wild.out, "step "));
  CHECK(load_safetensors(out2 + "/checkpoint.safetensors").metadata.count("step"));
}

TEST_CASE("a checkpoint of another model or shape is refused") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  write_cifar_set(tmp / "cifar");
  const std::string out = tmp / "run";
  REQUIRE(flowgrad_cmd(tiny_glow(tmp / "data", out) + " --steps 2").code == 0);
  const Bytes before = file_bytes(out + "/checkpoint.safetensors");

  // Resume into a different model or recipe.
  Run r = flowgrad_cmd("train --resume " + out + " --model nice --steps 4");
  CAPTURE(r.out);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "--model \"nice\""));
  CHECK(contains(r.out, "glow"));
  r = flowgrad_cmd("train --resume " + out + " --hidden 16 --batch 4 --steps 4");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "--hidden 16"));
  CHECK(contains(r.out, "--batch 4"));
  CHECK(file_bytes(out + "/checkpoint.safetensors") == before);

  // Evaluate on images of another shape.
  r = flowgrad_cmd("eval " + out + " --dataset cifar10 --data-dir " + (tmp / "cifar"));
  CAPTURE(r.out);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "expects 1x8x8 images"));
  CHECK(contains(r.out, "3x32x32"));

  // A file whose tensors do not fit the configuration in its metadata.
  SafeTensors ck = load_safetensors(out + "/checkpoint.safetensors");
  auto config = nlohmann::json::parse(ck.metadata.at("config"));
  config["model"]["hidden"] = 16;
  ck.metadata["config"] = config.dump();
  flowgrad::nn::save_safetensors(tmp / "edited.safetensors", ck.tensors, ck.metadata);
  r = flowgrad_cmd("eval " + (tmp / "edited.safetensors"));
  CAPTURE(r.out);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "edited.safetensors"));
  CHECK(contains(r.out, "expected"));
  fs::create_directories(tmp / "edited-run");
  fs::copy_file(tmp / "edited.safetensors", tmp / "edited-run/checkpoint.safetensors");
  r = flowgrad_cmd("train --resume " + (tmp / "edited-run") + " --steps 4");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "does not fit"));

  // A safetensors file that is not a training checkpoint.
  r = flowgrad_cmd("export-check --model glow --out " + (tmp / "check.safetensors"));
  CAPTURE(r.out);
  REQUIRE(r.code == 0);
  CHECK(load_safetensors(tmp / "check.safetensors").find("__input__") != nullptr);
  r = flowgrad_cmd("sample " + (tmp / "check.safetensors") + " --out " + (tmp / "x.png"));
  CHECK(r.code == 1);
  CHECK(contains(r.out, "not a flowgrad training checkpoint"));
  CHECK_FALSE(fs::exists(tmp / "x.png"));
}

TEST_CASE("SIGINT saves a checkpoint and exits 130; the run resumes from it") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run";
  Run r = flowgrad_cmd(tiny_glow(tmp / "data", out) + " --steps 1000000", "timeout --preserve-status -s INT 3 ");
  CAPTURE(r.out);
  CHECK(r.code == 130);
  CHECK(contains(r.out, "interrupted at step"));
  const SafeTensors ck = load_safetensors(out + "/checkpoint.safetensors");
  const long step = std::stol(ck.metadata.at("step"));
  CHECK(step > 0);
  Run resumed = flowgrad_cmd("train --resume " + out + " --steps " + std::to_string(step + 2));
  CAPTURE(resumed.out);
  CHECK(resumed.code == 0);
  CHECK(load_safetensors(out + "/checkpoint.safetensors").metadata.at("step") == std::to_string(step + 2));
}

TEST_CASE("train on a tiny CIFAR-10 set (3x32x32), then eval") {
  TempDir tmp;
  write_cifar_set(tmp / "cifar", 4, 6);
  const std::string out = tmp / "run";
  Run r = flowgrad_cmd("train --model realnvp --dataset cifar10 --data-dir " + (tmp / "cifar") + " --out " + out +
                       " --levels 2 --couplings 1 --hidden 4 --blocks 1 --batch 4 --steps 3 --flip --threads 2");
  CAPTURE(r.out);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "3x32x32"));
  Run e = flowgrad_cmd("eval " + out);
  CAPTURE(e.out);
  CHECK(e.code == 0);
  CHECK(std::isfinite(test_bpd_printed(e.out)));
}

TEST_CASE("end to end on the real Fashion-MNIST, when installed") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz")) {
    const std::string why = "skipped: Fashion-MNIST is not installed at " + dir + " (apt-get install dataset-fashion-mnist)";
    MESSAGE(why);
    return;
  }
  TempDir tmp;
  const std::string out = tmp / "run";
  Run r = flowgrad_cmd("train --model glow --dataset fashion-mnist --out " + out +
                       " --levels 2 --flow-steps 1 --hidden 8 --steps 5 --threads 2");
  CAPTURE(r.out);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "60,000 images"));
  const double bpd = test_bpd_printed(r.out);
  CHECK(bpd > 1.0);
  CHECK(bpd < 12.0);
  CHECK(is_png(out + "/samples_T1.0.png"));
}

TEST_CASE("train --conditional: log p(x | y), the marginal and the classifier's accuracy; a row of samples per class") {
  TempDir tmp;
  write_idx_set(tmp / "data");  // labels 0..3
  const std::string run = tmp / "run";
  const Run r = flowgrad_cmd(tiny_glow(tmp / "data", run) + " --conditional --steps 6");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, "conditioned on the class (10 classes, top prior shifted per channel)"));
  CHECK(contains(r.out, "class-conditional: marginal test bits/dim "));
  const auto rows = read_jsonl(run + "/metrics.jsonl");
  REQUIRE(!rows.empty());
  const double bpd = rows.back()["test_bpd"], marginal = rows.back()["test_marginal_bpd"],
               accuracy = rows.back()["test_accuracy"];
  CHECK(accuracy >= 0.0);
  CHECK(accuracy <= 1.0);
  // log p(x) = logsumexp_y log p(x | y) - log 10 >= log p(x | y_true) - log 10: in bits/dim
  // (8x8 images) at most log2(10) / 64 above the true class's.
  CHECK(marginal <= bpd + std::log2(10.0) / 64 + 1e-9);
  CHECK(is_png(run + "/samples_T0.7.png"));

  const Run eval = flowgrad_cmd("eval " + run);
  REQUIRE_MESSAGE(eval.code == 0, eval.out);
  CHECK(contains(eval.out, "given the true class"));
  CHECK(contains(eval.out, "marginal test bits/dim: "));
  CHECK(contains(eval.out, "generative classifier: "));

  const Run one = flowgrad_cmd("sample " + run + " --class 2 --n 5 --out " + (tmp / "two.png"));
  REQUIRE_MESSAGE(one.code == 0, one.out);
  CHECK(contains(one.out, "5 samples at temperature 1 from"));
  CHECK(contains(one.out, ", class 2"));
  const Run grid = flowgrad_cmd("sample " + run + " --per-class 3 --out " + (tmp / "grid.png"));
  REQUIRE_MESSAGE(grid.code == 0, grid.out);
  CHECK(contains(grid.out, "wrote " + (tmp / "grid.png") + ": 30 samples"));
  CHECK(contains(flowgrad_cmd("sample " + run + " --class 10 --out " + (tmp / "x.png")).out,
                 "--class 10: the model has classes 0..9"));

  // Resumed, it stays conditional; NICE and Real NVP refuse the option; labels must fit.
  const Run resumed = flowgrad_cmd("train --resume " + run + " --steps 8");
  REQUIRE_MESSAGE(resumed.code == 0, resumed.out);
  CHECK(contains(resumed.out, "class-conditional: marginal"));
  const Run nice = flowgrad_cmd("train --model nice --dataset mnist --data-dir " + (tmp / "data") + " --out " +
                                (tmp / "nice") + " --conditional --steps 1");
  CHECK(nice.code == 1);
  CHECK(contains(nice.out, "--conditional"));
  write_idx_set(tmp / "bad");
  Bytes labels = file_bytes(tmp / "bad/t10k-labels-idx1-ubyte");
  labels[8 + 5] = 12;
  write_file(tmp / "bad/t10k-labels-idx1-ubyte", labels);
  const Run bad = flowgrad_cmd(tiny_glow(tmp / "bad", tmp / "badrun") + " --conditional --steps 1");
  CHECK(bad.code == 1);
  CHECK(contains(bad.out, "label 12 at offset 13 (record 5): expected a class in 0..9"));  // the reader's check
}

TEST_CASE("train --conditional --class-shift position --class-splits: trained, resumed, evaluated and sampled per class") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string run = tmp / "run";
  const Run r = flowgrad_cmd(tiny_glow(tmp / "data", run) + " --conditional --class-shift position --class-splits --steps 4");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, "conditioned on the class (10 classes, top and split priors shifted per position)"));
  const Run resumed = flowgrad_cmd("train --resume " + run + " --steps 6");
  REQUIRE_MESSAGE(resumed.code == 0, resumed.out);
  CHECK(contains(resumed.out, "top and split priors shifted per position"));  // the stored form, not the defaults
  const Run eval = flowgrad_cmd("eval " + run);
  REQUIRE_MESSAGE(eval.code == 0, eval.out);
  CHECK(contains(eval.out, "generative classifier: "));
  const Run grid = flowgrad_cmd("sample " + run + " --per-class 2 --out " + (tmp / "grid.png"));
  REQUIRE_MESSAGE(grid.code == 0, grid.out);
  CHECK(contains(grid.out, ": 20 samples"));
  // Without --conditional the options have nothing to shift; a shift other than the two is refused.
  const Run plain = flowgrad_cmd(tiny_glow(tmp / "data", tmp / "plain") + " --class-splits --steps 1");
  CHECK(plain.code == 1);
  CHECK(contains(plain.out, "add --conditional"));
  const Run odd = flowgrad_cmd(tiny_glow(tmp / "data", tmp / "odd") + " --conditional --class-shift pixel --steps 1");
  CHECK(odd.code == 1);
  CHECK(contains(odd.out, "--class-shift: pixel not in {channel,position}"));
}

TEST_CASE("train --conditional --class-weight: the hybrid loss is in the recipe, kept on resume, and refused where it cannot apply") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string run = tmp / "run";
  const Run r = flowgrad_cmd(tiny_glow(tmp / "data", run) + " --conditional --class-splits --class-weight 50 --steps 4");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, "loss -log p(x | y) + 50 x -log p(y | x)"));
  CHECK(contains(r.out, "generative classifier accuracy"));
  const Run resumed = flowgrad_cmd("train --resume " + run + " --steps 6");
  REQUIRE_MESSAGE(resumed.code == 0, resumed.out);
  CHECK(contains(resumed.out, "+ 50 x -log p(y | x)"));  // the stored recipe
  const Run changed = flowgrad_cmd("train --resume " + run + " --steps 8 --class-weight 5");
  CHECK(changed.code == 1);
  CHECK(contains(changed.out, "--class-weight"));
  // The class term changes what is learned: the same run without it ends elsewhere.
  const Run plain_run = flowgrad_cmd(tiny_glow(tmp / "data", tmp / "without") + " --conditional --class-splits --steps 4");
  REQUIRE_MESSAGE(plain_run.code == 0, plain_run.out);
  std::string why;
  CHECK_FALSE(same_tensors(load_safetensors(tmp / "without/checkpoint.safetensors"),
                           load_safetensors(tmp / "run/checkpoint.safetensors"), why));
  const Run unconditional = flowgrad_cmd(tiny_glow(tmp / "data", tmp / "u") + " --class-weight 5 --steps 1");
  CHECK(unconditional.code == 1);
  CHECK(contains(unconditional.out, "--class-weight applies to a class-conditional model: add --conditional"));
  const Run negative = flowgrad_cmd(tiny_glow(tmp / "data", tmp / "n") + " --conditional --class-weight -1 --steps 1");
  CHECK(negative.code == 1);
  CHECK(contains(negative.out, "--class-weight must be >= 0 (0: off), got -1"));
}

TEST_CASE("train --dequantization variational: q is trained and saved with the model, resumes bit-exactly, eval --samples K") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  for (const std::string model : {"glow", "realnvp", "nice"}) {
    CAPTURE(model);
    auto cmd = [&](const std::string& out) {
      return "train --model " + model + " --dataset mnist --data-dir " + (tmp / "data") + " --out " + out +
             tiny_model_options(model) + " --dequantization variational --dequant-hidden 4 --batch 8 --warmup 3 --threads 2";
    };
    const Run a = flowgrad_cmd(cmd(tmp / (model + "-a")) + " --steps 8");
    REQUIRE_MESSAGE(a.code == 0, a.out);
    CHECK(contains(a.out, "variational dequantization (hidden 4)"));
    const Run b1 = flowgrad_cmd(cmd(tmp / (model + "-b")) + " --steps 8 --debug-interrupt-at-step 3");
    REQUIRE_MESSAGE(b1.code == 130, b1.out);
    const Run b2 = flowgrad_cmd("train --resume " + (tmp / (model + "-b")) + " --threads 2");
    REQUIRE_MESSAGE(b2.code == 0, b2.out);
    const SafeTensors ca = load_safetensors(tmp / (model + "-a/checkpoint.safetensors"));
    const SafeTensors cb = load_safetensors(tmp / (model + "-b/checkpoint.safetensors"));
    std::string why;
    CHECK_MESSAGE(same_tensors(ca, cb, why), why);
    CHECK(ca.metadata.at("noise_rng") == cb.metadata.at("noise_rng"));
    // q's parameters, their Adam moments and their average are in the checkpoint, and q trained.
    const auto* weight = ca.find("dequantizer.couplings.0.net.net.4.weight");
    REQUIRE(weight != nullptr);
    CHECK(ca.find("ema.dequantizer.couplings.0.net.net.4.weight") != nullptr);
    CHECK(xt::amax(xt::abs(std::get<xt::xarray<float>>(*weight)))() > 0.f);  // the zero init moved
    const auto ra = read_jsonl(tmp / (model + "-a/metrics.jsonl"));
    const auto rb = read_jsonl(tmp / (model + "-b/metrics.jsonl"));
    REQUIRE(ra.size() == rb.size());
    CHECK(ra.back()["test_bpd"] == rb.back()["test_bpd"]);
  }
  // The test bound with K samples: deterministic, and the option refused for uniform noise.
  const std::string run = tmp / "glow-a";
  const Run one = flowgrad_cmd("eval " + run), again = flowgrad_cmd("eval " + run + " --samples 1"),
            four = flowgrad_cmd("eval " + run + " --samples 4");
  REQUIRE_MESSAGE(one.code == 0, one.out);
  REQUIRE_MESSAGE(four.code == 0, four.out);
  CHECK(contains(one.out, "the bound with 1 sample of u ~ q(u | x) per image"));
  CHECK(contains(four.out, "4 samples of u ~ q(u | x) per image (importance-weighted)"));
  CHECK(one.out.substr(0, one.out.find(" images,")) == again.out.substr(0, again.out.find(" images,")));
  const Run uniform = flowgrad_cmd(tiny_glow(tmp / "data", tmp / "uniform") + " --steps 2");
  REQUIRE_MESSAGE(uniform.code == 0, uniform.out);
  const Run refused = flowgrad_cmd("eval " + (tmp / "uniform") + " --samples 4");
  CHECK(refused.code == 1);
  CHECK(contains(refused.out, "--samples 4: the run dequantizes with uniform noise"));
}
