// OpenBLAS picks its kernels once, when it loads, from its own CPU table; a CPU newer
// than the table gets old generic kernels (SSE3 "Prescott": ~5x slower sgemm). The only
// cure is OPENBLAS_CORETYPE in the environment before the library loads, so a program
// calls this first thing in main: it re-executes itself with the variable set.
// It lives in apps/, not in the library: a library must not re-exec its host program.
#pragma once

#include <string>

namespace flowgrad::apps {

// If OPENBLAS_CORETYPE is unset and OpenBLAS chose kernels for an older instruction set
// than this CPU has (e.g. Prescott on an AVX-512 CPU), set it (SkylakeX, or Haswell with
// AVX2 only) and re-exec /proc/self/exe with the same argv; the restarted program prints
// one line on stderr saying so. Never overrides a user's value; does nothing under
// valgrind (which has no AVX-512); at most one restart (a marker variable guards loops).
// Returns only if no restart happened.
void ensure_openblas_coretype(int argc, char** argv);

// The kernel family worth asking for, or "" to keep `chosen`: pure, for tests.
// cpu_level: 2 = AVX-512 (F, CD, BW, DQ, VL), 1 = AVX2 + FMA, 0 = older.
std::string better_openblas_core(const std::string& chosen, int cpu_level);
int cpu_simd_level();

}  // namespace flowgrad::apps
