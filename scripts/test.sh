#!/usr/bin/env bash
# Sets everything up, builds, and runs every doctest suite. Ends with one line
# "N passed, N failed" summed over all suites (test cases, doctest's counts); a suite
# that crashes before printing its counts counts as one failure. Exit 1 if anything failed.
#   bash scripts/test.sh [BUILD_DIR]
# FLOWGRAD_BUILD_ONLY: set to build and not run.
# FLOWGRAD_DOCTEST_ARGS: more doctest options for every suite (filters such as -tce=NAME).
set -uo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
bash scripts/setup.sh "$build_dir" || exit 1
echo "build: compiling (first time takes a few minutes on 2 cores)"
ninja -C "$build_dir" >"$build_dir/ninja.log" 2>&1 || { tail -40 "$build_dir/ninja.log"; echo "0 passed, 1 failed"; exit 1; }
# FLOWGRAD_BUILD_ONLY=1: stop here (.ci/run builds the sanitizer suites ahead of running them).
[[ -n ${FLOWGRAD_BUILD_ONLY:-} ]] && { echo "build: done ($build_dir)"; exit 0; }

read -r -a doctest_args <<< "${FLOWGRAD_DOCTEST_ARGS:-}"
passed=0 failed=0
for suite in "$build_dir"/tests/test_*; do
  [[ -f $suite && -x $suite ]] || continue
  name=$(basename "$suite")
  log="$build_dir/$name.log"
  start=$SECONDS
  "$suite" --no-intro=true "${doctest_args[@]}" >"$log" 2>&1
  code=$?
  line=$(grep -E '^\[doctest\] test cases:' "$log" | tail -1)
  if [[ -z $line ]]; then
    echo "$name: crashed (exit $code) before reporting; last lines:"
    tail -15 "$log"
    failed=$((failed + 1))
    continue
  fi
  p=$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$line")
  passed=$((passed + p)) failed=$((failed + f))
  if ((f > 0 || code != 0)); then
    grep -v '^\[doctest\] \(doctest version\|run with\)' "$log" | tail -60
    ((f == 0)) && failed=$((failed + 1))
  fi
  grep -E '^\[doctest\] (test cases|Status)' "$log" | sed "s/^/$name: /" | head -1
  echo "$name: $((SECONDS - start)) s"
done
echo "$passed passed, $failed failed"
((failed == 0))
