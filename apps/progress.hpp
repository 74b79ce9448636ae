// Training progress: a one-line bar redrawn in place on a terminal, plain log lines otherwise.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace flowgrad::app {

class Progress {
 public:
  // total_steps may be 0 when the run is bounded by time only (then the ETA uses minutes).
  Progress(std::size_t total_steps, double time_limit_s, std::size_t log_every);
  // Called after each training step.
  void update(std::size_t step, std::size_t epoch, double train_bpd, double images_per_s);
  // A message that must not be overwritten by the bar (evaluations, warnings).
  void print_line(const std::string& line);
  void finish();
  double elapsed_s() const;

 private:
  bool tty_;
  std::size_t total_steps_, log_every_;
  double time_limit_s_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool bar_drawn_ = false;
};

std::string format_duration(double seconds);

}  // namespace flowgrad::app
