#!/usr/bin/env bash
# Builds the library, the flowgrad program and every doctest suite with AddressSanitizer +
# UndefinedBehaviorSanitizer in their own build directory and runs the suites; ends with
# "N passed, N failed" as scripts/test.sh does.
#   bash scripts/sanitize.sh [BUILD_DIR]        (default build-asan)
# FLOWGRAD_BUILD_ONLY=1 builds without running (scripts/test.sh).
# clang 14 at -O1: its -fsanitize=undefined includes float-cast-overflow, and the build
# takes about half of gcc's at -O3 with the sanitizers (which did not fit CI's budget).
# UBSan's checks recover by default; halt_on_error makes the first report fail its suite.
# Left out (doctest -tce): the pkg-config and subproject builds and the docs' code blocks,
# which check packaging, not memory safety, and build uninstrumented code against the
# library (ASan refuses that at start-up: "runtime does not come first"); and the 2-D
# densities example's fit of 4 x 600 steps (about 4 minutes under the sanitizers; its
# layers and Adam run here in the flows, autograd and nn suites, and it runs whole in the
# main suite). MPI is left out too (-Dmpi=disabled): Open MPI's own allocations are reported
# as leaks, and its data-parallel tests then skip with a message.
set -uo pipefail
cd "$(dirname "$0")/.."
unset FLOWGRAD_MPI_SETUP
export FLOWGRAD_EXTRA_PACKAGES="clang-14 libclang-rt-14-dev ${FLOWGRAD_EXTRA_PACKAGES:-}"
CC=clang-14 CXX=clang++-14 \
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
FLOWGRAD_MESON_OPTIONS="--buildtype=plain -Doptimization=1 -Dcpp_args=-gline-tables-only -Db_sanitize=address,undefined -Db_lundef=false -Db_ndebug=false -Dmpi=disabled" \
FLOWGRAD_DOCTEST_ARGS="-tce=*installed*flowgrad*pkg-config*,*meson*subproject*,*code*block*,*2-D*densities*example* ${FLOWGRAD_DOCTEST_ARGS:-}" \
  exec bash scripts/test.sh "${1:-build-asan}"
