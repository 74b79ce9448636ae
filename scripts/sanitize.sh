#!/usr/bin/env bash
# Builds every doctest suite with AddressSanitizer + UndefinedBehaviorSanitizer (gcc, plus
# -fsanitize=float-cast-overflow) in its own build directory and runs them; ends with
# "N passed, N failed" as scripts/test.sh does.
#   bash scripts/sanitize.sh [BUILD_DIR]        (default build-asan)
# UBSan's checks recover by default; halt_on_error makes the first report fail its suite.
# One test is left out: it links an uninstrumented app against the installed (here
# instrumented) library, which ASan refuses at start-up ("runtime does not come first").
set -uo pipefail
cd "$(dirname "$0")/.."
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
FLOWGRAD_MESON_OPTIONS="-Db_sanitize=address,undefined -Db_ndebug=false -Dcpp_args=-fsanitize=float-cast-overflow" \
FLOWGRAD_DOCTEST_ARGS="-tce=*installed*flowgrad*pkg-config*" \
  exec bash scripts/test.sh "${1:-build-asan}"
