// A per-op time profile of training steps, for `flowgrad bench --profile`.
//
// While enabled, record() charges the wall time since the previous op (or mark) on this
// thread to that op's forward, and backward() times each node's closure. Forward time of
// an op therefore includes the glue code that ran just before it (shape checks, masks):
// a good enough attribution for finding hot spots. Off by default; then it costs one
// branch per op.
#pragma once

#include <string>

namespace flowgrad::profile {

void enable(bool on);
bool enabled();
void reset();

// Charges the time since the previous op or mark to `what` (e.g. "optimizer step").
void mark(const char* what);

// Used by the engine.
void forward_op(const char* op);
void backward_op(const std::string& op, double ms);
void restart_clock();

// A table of ms per step (totals divided by `steps`), the most expensive rows first.
std::string report(int steps);

}  // namespace flowgrad::profile
