#include "apps/openblas_env.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

#include "autograd/blas.hpp"

namespace flowgrad::apps {

namespace {

const char* const kMarker = "FLOWGRAD_OPENBLAS_RESTARTED";  // holds the core we replaced

bool under_valgrind() {
#ifdef RUNNING_ON_VALGRIND
  return RUNNING_ON_VALGRIND != 0;
#else
  return false;
#endif
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// The instruction set OpenBLAS's kernels for a core family use (names as
// openblas_get_corename() prints them).
int core_level(const std::string& core) {
  const std::string c = lower(core);
  for (const char* k : {"skylakex", "cooperlake", "sapphirerapids"})
    if (c == k) return 2;
  for (const char* k : {"haswell", "zen", "excavator"})
    if (c == k) return 1;
  return 0;
}

}  // namespace

int cpu_simd_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
  return 0;
}

std::string better_openblas_core(const std::string& chosen, int cpu_level) {
  if (cpu_level <= core_level(chosen)) return "";
  return cpu_level == 2 ? "SkylakeX" : "Haswell";
}

void ensure_openblas_coretype(int /*argc*/, char** argv) {
  if (const char* replaced = std::getenv(kMarker)) {
    // We are the restarted program: say once what happened, and do not pass the marker
    // on to programs we start (they inherit OPENBLAS_CORETYPE and stay quiet).
    const char* wanted = std::getenv("OPENBLAS_CORETYPE");
    const std::string now = blas::core_name();
    if (wanted && lower(now) == lower(wanted))
      std::fprintf(stderr,
                   "flowgrad: OpenBLAS chose its %s kernels for this CPU; restarted with "
                   "OPENBLAS_CORETYPE=%s (set OPENBLAS_CORETYPE yourself to choose)\n",
                   replaced, wanted);
    else if (wanted)
      std::fprintf(stderr,
                   "flowgrad: OpenBLAS ignored OPENBLAS_CORETYPE=%s and uses its %s kernels\n",
                   wanted, now.c_str());
    else
      std::fprintf(stderr,
                   "flowgrad: restarted to set OPENBLAS_CORETYPE, but it was lost on the way; "
                   "OpenBLAS uses its %s kernels\n", now.c_str());
    unsetenv(kMarker);
    return;
  }
  if (std::getenv("OPENBLAS_CORETYPE")) return;  // the user's choice
  if (under_valgrind()) return;
  const std::string chosen = blas::core_name();
  const std::string better = better_openblas_core(chosen, cpu_simd_level());
  if (better.empty()) return;
  setenv("OPENBLAS_CORETYPE", better.c_str(), 1);
  setenv(kMarker, chosen.c_str(), 1);
  execv("/proc/self/exe", argv);
  // Still here: the restart failed. Carry on with the slow kernels, and say so.
  const int err = errno;
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kMarker);
  std::fprintf(stderr,
               "flowgrad: OpenBLAS chose its slow %s kernels; restarting with "
               "OPENBLAS_CORETYPE=%s failed (%s); continuing\n",
               chosen.c_str(), better.c_str(), std::strerror(err));
}

}  // namespace flowgrad::apps
