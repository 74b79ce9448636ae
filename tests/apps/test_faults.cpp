// Faults lose nothing: a non-finite state is never checkpointed, one process trains in a
// run directory at a time, a full disk keeps the last checkpoint, and `kill -9` at any
// moment leaves a run that resumes (or a directory a new run may use).
#include <doctest/doctest.h>

#include "app_test.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <random>
#include <thread>

using flowgrad::testing::contains;
using flowgrad::testing::TempDir;
using flowgrad::testing::temp_files_in;
using namespace app_test;

namespace {

// `flowgrad ARGS` started in the background, its output in `log`.
struct Background {
  pid_t pid = -1;
  Background(const std::string& args, const std::string& log) {
    const std::string cmd = "exec " + kExe + " " + args + " >" + log + " 2>&1 </dev/null";
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  // The exit code, or 128 + the signal that ended it.
  int wait() {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  int kill_and_wait(int sig) {
    ::kill(pid, sig);
    return wait();
  }
  ~Background() {
    if (pid > 0) ::kill(pid, SIGKILL), ::waitpid(pid, nullptr, 0);
  }
};

bool wait_for_file(const std::string& path, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

bool all_finite(const SafeTensors& ck) {
  for (const auto& [name, v] : ck.tensors) {
    if (flowgrad::nn::dtype_of(v) != flowgrad::nn::DType::F32) continue;  // Adam's step counts
    for (float x : flowgrad::nn::float_array<float>(v, name))
      if (!std::isfinite(x)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a non-finite weight is never checkpointed: the last good checkpoint stays, and resumes") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run";
  // No clipping, so no gradient check stands between the bad update and the checkpoint.
  Run r = flowgrad_cmd(tiny_glow(tmp / "data", out) +
                       " --steps 20 --checkpoint-every 1 --clip 0 --clip-factor 0 --debug-nan-weights-at-step 3");
  CAPTURE(r.out);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "step 3: after its update '"));
  CHECK(contains(r.out, "' is not finite"));
  CHECK(contains(r.out, "(step 2)"));
  const SafeTensors ck = load_safetensors(out + "/checkpoint.safetensors");
  CHECK(ck.metadata.at("step") == "2");
  CHECK(all_finite(ck));
  CHECK(temp_files_in(out).empty());
  Run resumed = flowgrad_cmd("train --resume " + out + " --steps 4");
  CAPTURE(resumed.out);
  CHECK(resumed.code == 0);
}

TEST_CASE("one process trains in a run directory: a second one is refused, naming the first") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run";
  Background first(tiny_glow(tmp / "data", out) + " --steps 1000000", tmp / "first.log");
  REQUIRE(wait_for_file(out + "/config.json", 60));  // written after the step-0 checkpoint

  Run second = flowgrad_cmd("train --resume " + out + " --steps 1000001");
  CAPTURE(second.out);
  CHECK(second.code == 1);
  CHECK(contains(second.out, out + " is in use: pid " + std::to_string(first.pid)));
  CHECK(contains(second.out, "train --model glow"));  // the first one's command line
  // A new run into the same directory is refused too (it holds a checkpoint).
  Run fresh = flowgrad_cmd(tiny_glow(tmp / "data", out) + " --steps 3");
  CHECK(fresh.code == 1);
  CHECK(contains(fresh.out, "--resume"));

  CHECK(first.kill_and_wait(SIGINT) == 130);  // saves a checkpoint; its end releases the lock
  const long step = std::stol(load_safetensors(out + "/checkpoint.safetensors").metadata.at("step"));
  Run resumed = flowgrad_cmd("train --resume " + out + " --steps " + std::to_string(step + 2));
  CAPTURE(resumed.out);
  CHECK(resumed.code == 0);
  CHECK(contains(resumed.out, "resumed at step " + std::to_string(step)));
}

TEST_CASE("a full disk during a checkpoint: a clear error, the previous checkpoint intact and resumable") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run", ckpt = out + "/checkpoint.safetensors";
  REQUIRE(flowgrad_cmd(tiny_glow(tmp / "data", out) + " --steps 1").code == 0);
  const Bytes before = file_bytes(ckpt);
  // A file-size limit of half the checkpoint (SIGXFSZ ignored, so writes fail with EFBIG):
  // the small files of the evaluation fit, the checkpoint does not. sh's ulimit -f counts
  // 512-byte blocks.
  const std::size_t blocks = before.size() / 2 / 512;
  REQUIRE(blocks >= 16);
  Run full = flowgrad_cmd("train --resume " + out + " --steps 3",
                          "trap '' XFSZ; ulimit -f " + std::to_string(blocks) + "; ");
  CAPTURE(full.out);
  CHECK(full.code == 1);
  CHECK(contains(full.out, "cannot write " + ckpt));
  CHECK(contains(full.out, std::strerror(EFBIG)));
  CHECK(contains(full.out, "left as it was"));
  CHECK(file_bytes(ckpt) == before);
  CHECK(temp_files_in(out).empty());
  Run resumed = flowgrad_cmd("train --resume " + out + " --steps 3");
  CAPTURE(resumed.out);
  CHECK(resumed.code == 0);
  CHECK(load_safetensors(ckpt).metadata.at("step") == "3");
}

TEST_CASE("kill -9 at random moments, many times: the run resumes from its last checkpoint to the same end") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  // Checkpoints at every step, evaluations every 6 (an epoch): kills land in every phase.
  auto options = [&](const std::string& out) {
    return tiny_glow(tmp / "data", out) + " --steps 400 --checkpoint-every 1";
  };
  const std::string reference = tmp / "reference", out = tmp / "run", ckpt = out + "/checkpoint.safetensors";
  REQUIRE(flowgrad_cmd(options(reference)).code == 0);

  // Runs ARGS, kills it after `delay` ms; true if it ended on its own (exit 0) first.
  auto start_and_kill = [&](const std::string& args, int delay) {
    Background run(args, tmp / "run.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    const int code = run.kill_and_wait(SIGKILL);
    const Bytes log = file_bytes(tmp / "run.log");
    CHECK_MESSAGE((code == 0 || code == 128 + SIGKILL),
                  args << ": exit " << code << ": " << std::string(log.begin(), log.end()));
    return code == 0;
  };
  // Before the first checkpoint: kills sweep through the start-up (0, 1, 2, ... ms), each
  // followed by a new run into the same directory.
  int before_checkpoint = 0, of_resumed = 0;
  for (int delay = 0; !fs::exists(ckpt) && delay < 2000; ++delay, ++before_checkpoint)
    start_and_kill(options(out), delay);
  REQUIRE(fs::exists(ckpt));
  // After it: resumed runs, killed at random moments until one finishes.
  std::mt19937 rng(20261129);
  std::uniform_int_distribution<int> delay_ms(0, 150);
  bool finished = false;
  for (; of_resumed < 25 && !finished; ++of_resumed)
    finished = start_and_kill("train --resume " + out + " --threads 2", delay_ms(rng));
  MESSAGE(before_checkpoint << " kills before the first checkpoint, " << of_resumed << " resumed runs killed or ended");
  CHECK(before_checkpoint > 1);
  CHECK(of_resumed >= 10);  // (here all 25 are killed before they can finish: the run takes ~2 s)

  // Whatever the kills left, the run finishes, with the uninterrupted run's exact state.
  Run last = flowgrad_cmd("train --resume " + out + " --threads 2");
  CAPTURE(last.out);
  REQUIRE(last.code == 0);
  const SafeTensors a = load_safetensors(reference + "/checkpoint.safetensors");
  const SafeTensors b = load_safetensors(out + "/checkpoint.safetensors");
  std::string why;
  CHECK_MESSAGE(same_tensors(a, b, why), why);
  for (const char* key : {"step", "rng", "noise_rng", "shuffle_rng", "epoch", "batch_in_epoch", "schedule_start",
                          "schedule_end", "grad_norm_average", "clipped_steps"}) {
    CAPTURE(key);
    CHECK(a.metadata.at(key) == b.metadata.at(key));
  }
  const auto ra = read_jsonl(reference + "/metrics.jsonl"), rb = read_jsonl(out + "/metrics.jsonl");
  REQUIRE(ra.size() == rb.size());
  for (std::size_t k = 0; k < ra.size(); ++k) {
    CHECK(ra[k]["step"] == rb[k]["step"]);
    CHECK(ra[k]["test_bpd"] == rb[k]["test_bpd"]);
  }
  CHECK(temp_files_in(out).empty());
}

TEST_CASE("tampered checkpoint metadata or stored config: one line naming the file and the key, exit 1") {
  TempDir tmp;
  write_idx_set(tmp / "data");
  const std::string out = tmp / "run";
  REQUIRE(flowgrad_cmd(tiny_glow(tmp / "data", out) + " --steps 2").code == 0);
  const SafeTensors good = load_safetensors(out + "/checkpoint.safetensors");
  struct Case {
    std::string part, key;  // part: "meta" for a metadata key, else "model" or "train" in the config
    nlohmann::json value;
    std::string expect;
    bool eval_reads = true;  // eval reads it too (train --resume reads everything)
  };
  const std::vector<Case> cases = {
      {"meta", "step", "abc", "metadata 'step' is not a valid number: 'abc'"},
      {"meta", "seconds", "nan", "metadata 'seconds' is not a valid finite number: 'nan'", false},
      {"meta", "seconds", "-5", "metadata 'seconds' is negative", false},
      {"meta", "epoch", "-3", "metadata 'epoch' is not a valid number", false},
      {"meta", "batch_in_epoch", "99999999999999999999999", "metadata 'batch_in_epoch' is not a valid number", false},
      {"meta", "bpd_sum", "1e999", "metadata 'bpd_sum' is not a valid finite number", false},
      {"model", "hidden", -1, "model.hidden is -1, expected a whole number >= 0"},
      {"model", "hidden", 34359738368ull, "--hidden must be at most 4096, got 34359738368"},
      {"model", "hidden", 1e30, "model.hidden is 1e+30, expected a whole number >= 0"},
      {"model", "hidden", 2.5, "model.hidden is 2.5, expected a whole number >= 0"},
      {"model", "levels", 64, "--levels must be at most 16, got 64"},
      {"model", "image", {1, 8}, "model.image is not 3 numbers"},
      {"model", "name", 7, "model.name is 7, expected a string"},
      {"train", "eval_every", 18446744073709551615ull, "--eval-every must be at most"},
      {"train", "minutes", "x", "train.minutes is \"x\", expected a number"},
      {"train", "warmup", 9223372036854775808ull, "train.warmup is 9223372036854775808, expected a whole number"},
      {"train", "batch", 0, "--batch must be positive"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.part + "." + c.key);
    SafeTensors ck = good;
    if (c.part == "meta") {
      ck.metadata[c.key] = c.value.get<std::string>();
    } else {
      auto config = nlohmann::json::parse(ck.metadata.at("config"));
      config[c.part][c.key] = c.value;
      ck.metadata["config"] = config.dump();
    }
    const std::string dir = tmp / "tampered";
    fs::remove_all(dir);
    fs::create_directories(dir);
    flowgrad::nn::save_safetensors(dir + "/checkpoint.safetensors", ck.tensors, ck.metadata);
    std::vector<std::string> commands = {"train --resume " + dir + " --steps 3"};
    if (c.eval_reads) commands.push_back("eval " + dir);
    for (const auto& command : commands) {
      CAPTURE(command);
      Run r = flowgrad_cmd(command);
      CAPTURE(r.out);
      CHECK(r.code == 1);
      CHECK(contains(r.out, dir + "/checkpoint.safetensors: "));
      CHECK(contains(r.out, c.expect));
      for (const char* bare : {"bad_alloc", "stoll", "stoull", "stod", "json.exception", "terminate"})
        CHECK_FALSE(contains(r.out, bare));
    }
  }
}
