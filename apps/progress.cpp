#include "apps/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace flowgrad::app {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  return buf;
}

Progress::Progress(std::size_t total_steps, double time_limit_s, std::size_t log_every, std::size_t first_step)
    : tty_(isatty(fileno(stdout)) != 0),
      total_steps_(total_steps),
      log_every_(std::max<std::size_t>(1, log_every)),
      first_step_(first_step),
      time_limit_s_(time_limit_s),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(std::size_t step, std::size_t epoch, double train_bpd, double images_per_s) {
  const double elapsed = elapsed_s();
  double fraction = 0;
  if (total_steps_ > first_step_)
    fraction = double(step > first_step_ ? step - first_step_ : 0) / double(total_steps_ - first_step_);
  if (time_limit_s_ > 0) fraction = std::max(fraction, elapsed / time_limit_s_);
  fraction = std::min(1.0, fraction);
  const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : NAN;
  char stats[160];
  std::snprintf(stats, sizeof stats, "step %zu  epoch %zu  %.3f bits/dim  %.0f img/s  ETA %s", step,
                epoch, train_bpd, images_per_s, format_duration(eta).c_str());
  if (tty_) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100) && fraction < 1) return;
    last_draw_ = now;
    const int width = 24, filled = int(fraction * width);
    std::printf("\r[%s%s] %3.0f%%  %s\x1b[K", std::string(filled, '#').c_str(),
                std::string(width - filled, '.').c_str(), 100 * fraction, stats);
    std::fflush(stdout);
    bar_drawn_ = true;
  } else if (step % log_every_ == 0) {
    std::printf("%s  elapsed %s\n", stats, format_duration(elapsed).c_str());
    std::fflush(stdout);
  }
}

void Progress::print_line(const std::string& line) {
  if (tty_ && bar_drawn_) std::printf("\r\x1b[K");
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  bar_drawn_ = false;
}

void Progress::finish() {
  if (tty_ && bar_drawn_) std::printf("\n");
  bar_drawn_ = false;
  std::fflush(stdout);
}

}  // namespace flowgrad::app
