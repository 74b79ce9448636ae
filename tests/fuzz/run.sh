#!/usr/bin/env bash
# Fuzzes the file readers with libFuzzer: clang-14 builds each target with AddressSanitizer
# and UndefinedBehaviorSanitizer (Debian's clang-14 and libclang-rt-14-dev, installed by
# scripts/setup.sh when FLOWGRAD_FUZZ=1). For each target it replays the committed corpus
# (tests/fuzz/corpus/TARGET: seeds and past findings), then fuzzes it for SECONDS.
# -malloc_limit_mb makes any allocation sized by the input beyond that limit a finding.
# Ends with "N passed, N failed" (one replay and one fuzz run per target).
#   bash tests/fuzz/run.sh [SECONDS] [BUILD_DIR] [TARGET...]      (default 20 s, build-fuzz)
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${1:-20}
build_dir=${2:-build-fuzz}
shift $(($# < 2 ? $# : 2))
targets=("$@")
((${#targets[@]})) || targets=(idx idx_dataset cifar safetensors run_config)
fuzz_dir=$root/tests/fuzz
FLOWGRAD_EXTRA_PACKAGES="clang-14 libclang-rt-14-dev ${FLOWGRAD_EXTRA_PACKAGES:-}" \
  bash scripts/setup.sh --packages-only >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)

# One build.ninja: each library source compiled once, shared by the targets that need it.
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all"
declare -A needs=(
  [idx]="datasets/idx.cpp datasets/byte_reader.cpp"
  [idx_dataset]="datasets/idx.cpp datasets/byte_reader.cpp"
  [cifar]="datasets/cifar.cpp datasets/byte_reader.cpp"
  [safetensors]="nn/safetensors.cpp autograd/atomic_file.cpp"
  [run_config]="apps/run_config.cpp"
)
{
  echo "cxx = clang++-14"
  echo "flags = -std=c++17 -O1 -g -fno-omit-frame-pointer $sanitize -fsanitize=fuzzer-no-link -DXTENSOR_USE_XSIMD -I$root -I$fuzz_dir"
  echo "rule cxx"
  echo "  command = \$cxx -MD -MF \$out.d \$flags -c \$in -o \$out"
  echo "  depfile = \$out.d"
  echo "  deps = gcc"
  echo "rule link"
  echo "  command = \$cxx $sanitize -fsanitize=fuzzer \$in -o \$out -lz"
  for src in datasets/idx.cpp datasets/byte_reader.cpp datasets/cifar.cpp nn/safetensors.cpp autograd/atomic_file.cpp \
             apps/run_config.cpp; do
    echo "build obj/${src//\//_}.o: cxx $root/$src"
  done
  for t in "${!needs[@]}"; do
    objs="obj/fuzz_$t.o"
    for src in ${needs[$t]}; do objs+=" obj/${src//\//_}.o"; done
    echo "build obj/fuzz_$t.o: cxx $fuzz_dir/fuzz_$t.cpp"
    echo "build fuzz_$t: link $objs"
  done
} >"$build_dir/build.ninja"
echo "fuzz: building ${targets[*]} with clang-14 (ASan + UBSan + libFuzzer)"
start=$SECONDS
if ! ninja -C "$build_dir" -j2 "${targets[@]/#/fuzz_}" >"$build_dir/ninja.log" 2>&1; then
  tail -30 "$build_dir/ninja.log"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "fuzz: built in $((SECONDS - start)) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0 failed=0
for t in "${targets[@]}"; do
  bin=$build_dir/fuzz_$t
  corpus=$fuzz_dir/corpus/$t
  work=$build_dir/work/$t
  mkdir -p "$work"
  options=(-malloc_limit_mb=64 -rss_limit_mb=1024 -timeout=10 -max_len=16384
           -artifact_prefix="$build_dir/$t-")
  [[ -f $fuzz_dir/$t.dict ]] && options+=(-dict="$fuzz_dir/$t.dict")

  # Replay: every committed input, once.
  log=$build_dir/$t-replay.log
  if "$bin" "${options[@]}" "$corpus"/* >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "fuzz $t: replayed $(ls "$corpus" | wc -l) corpus inputs"
  else
    failed=$((failed + 1))
    echo "fuzz $t: replay FAILED; last lines of $log:"
    tail -30 "$log"
  fi

  # Fuzz for the budget; new inputs go to $work, the committed corpus is only read.
  log=$build_dir/$t-fuzz.log
  start=$SECONDS
  if "$bin" "${options[@]}" -max_total_time="$seconds" -print_final_stats=1 "$work" "$corpus" >"$log" 2>&1; then
    passed=$((passed + 1))
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
    echo "fuzz $t: ${runs:-?} executions in $((SECONDS - start)) s, no finding"
  else
    failed=$((failed + 1))
    echo "fuzz $t: FINDING after $((SECONDS - start)) s; reproduce with $bin $build_dir/$t-<artifact>; last lines of $log:"
    tail -40 "$log"
  fi
done
echo "$passed passed, $failed failed"
((failed == 0))
