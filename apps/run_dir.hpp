// Keeping a run directory sound: one training process at a time, and no leftovers of
// writes a killed process did not finish.
#pragma once

#include <string>

namespace flowgrad::app {

// An exclusive flock on the directory itself: nothing is added to it, and a killed
// process releases it at once.
class RunLock {
 public:
  // Throws std::runtime_error naming the process that holds the lock (pid and command line).
  explicit RunLock(const std::string& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// What an interrupted atomic write of one of a run's files leaves: NAME.tmp.PID.N (or the
// older NAME.tmp), NAME being checkpoint.safetensors, config.json, metrics.jsonl, ...
bool is_run_temp_file(const std::string& name);
// Deletes those in the directory; call it holding the lock, when no writer can be running.
void remove_temp_files(const std::string& run_dir);

}  // namespace flowgrad::app
