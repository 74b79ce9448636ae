// Training progress: a one-line bar redrawn in place on a terminal, plain log lines otherwise.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace flowgrad::app {

class Progress {
 public:
  // total_steps may be 0 when the run is bounded by time only (then the ETA uses minutes).
  // first_step: the step this process starts from (a resumed run), so the ETA counts
  // only the steps this process has to do in time_limit_s.
  Progress(std::size_t total_steps, double time_limit_s, std::size_t log_every, std::size_t first_step = 0);
  // Called after each training step.
  void update(std::size_t step, std::size_t epoch, double train_bpd, double images_per_s);
  // A message that must not be overwritten by the bar (evaluations, warnings).
  void print_line(const std::string& line);
  void finish();
  // Once the run knows its length in steps (a time budget plans it after the warmup).
  void set_total_steps(std::size_t total) { total_steps_ = total; }
  double elapsed_s() const;
  bool tty() const { return tty_; }

 private:
  bool tty_;
  std::size_t total_steps_, log_every_, first_step_;
  double time_limit_s_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool bar_drawn_ = false;
};

std::string format_duration(double seconds);

}  // namespace flowgrad::app
