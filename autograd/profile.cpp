#include "autograd/profile.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <vector>

namespace flowgrad::profile {

namespace {
using Clock = std::chrono::steady_clock;

struct Row {
  double forward_ms = 0, backward_ms = 0;
  long forward_calls = 0, backward_calls = 0;
};

std::atomic<bool> g_enabled{false};
std::mutex g_mutex;
std::map<std::string, Row> g_rows;
thread_local Clock::time_point t_last = Clock::now();

double lap() {
  const auto now = Clock::now();
  const double ms = std::chrono::duration<double, std::milli>(now - t_last).count();
  t_last = now;
  return ms;
}
}  // namespace

void enable(bool on) {
  restart_clock();
  g_enabled = on;
}
bool enabled() { return g_enabled.load(std::memory_order_relaxed); }
void reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_rows.clear();
}
void restart_clock() { t_last = Clock::now(); }

void forward_op(const char* op) {
  const double ms = lap();
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& r = g_rows[op];
  r.forward_ms += ms;
  ++r.forward_calls;
}

void mark(const char* what) {
  if (enabled()) forward_op(what);
}

void backward_op(const std::string& op, double ms) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& r = g_rows[op];
  r.backward_ms += ms;
  ++r.backward_calls;
}

std::string report(int steps) {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<std::pair<std::string, Row>> rows(g_rows.begin(), g_rows.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.forward_ms + a.second.backward_ms > b.second.forward_ms + b.second.backward_ms;
  });
  double total = 0;
  for (const auto& [name, r] : rows) total += r.forward_ms + r.backward_ms;
  const double n = std::max(1, steps);
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "%-24s %8s %10s %10s %10s %6s\n", "op (per step)", "calls",
                "fwd ms", "bwd ms", "total ms", "%");
  out += line;
  for (const auto& [name, r] : rows) {
    const double t = r.forward_ms + r.backward_ms;
    std::snprintf(line, sizeof line, "%-24s %8.0f %10.2f %10.2f %10.2f %6.1f\n", name.c_str(),
                  r.forward_calls / n, r.forward_ms / n, r.backward_ms / n, t / n,
                  total > 0 ? 100 * t / total : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "%-24s %8s %10s %10s %10.2f\n", "total", "", "", "", total / n);
  out += line;
  return out;
}

}  // namespace flowgrad::profile
