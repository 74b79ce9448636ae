#!/usr/bin/env bash
# flowgrad's training step against the PyTorch reference's: the same bench configs
# (../shared/reference/torch_flows.py), batch 64, on this machine, in this run.
#
#   bash bench/compare.sh [--steps S] [--threads "1 2"] [--models "nice realnvp glow"]
#                         [--rounds R] [--build DIR] [--out FILE.jsonl]
#
# Each config runs R rounds of (flowgrad, PyTorch) back to back, so drift in background
# load hits both; each side's best round (lowest median step time) is kept. Peak RSS is
# measured from outside with /usr/bin/time -v for both. The reference runs with
# OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs unless you set OPENBLAS_CORETYPE yourself
# (flowgrad picks its OpenBLAS kernels itself). Every raw JSON line goes to --out.
# The reference's path: $FLOWGRAD_TORCH_REFERENCE, else ../shared/reference/torch_flows.py
# beside this repository. Without python3-torch, only flowgrad's side runs.
set -euo pipefail
cd "$(dirname "$0")/.."

steps=10 threads="1 2" models="nice realnvp glow" rounds=2 build=build out=""
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $steps =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --steps and --rounds take positive integers" >&2; exit 2; }
for m in $models; do
  [[ $m == nice || $m == realnvp || $m == glow ]] || { echo "compare.sh: unknown model '$m' (nice, realnvp, glow)" >&2; exit 2; }
done
for t in $threads; do
  [[ $t =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --threads takes positive integers, got '$t'" >&2; exit 2; }
done
out=${out:-$build/compare-$(date +%Y%m%d-%H%M%S).jsonl}

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
if [[ ! -x /usr/bin/time ]]; then
  echo "compare.sh: installing GNU time (for peak RSS)"
  $sudo apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q time >/dev/null
fi

if [[ ! -f $build/build.ninja ]]; then
  bash scripts/setup.sh "$build"
fi
ninja -C "$build" apps/flowgrad >/dev/null
ours_bin=$build/apps/flowgrad

reference=${FLOWGRAD_TORCH_REFERENCE:-../shared/reference/torch_flows.py}
have_torch=1
if [[ ! -f $reference ]]; then
  echo "compare.sh: no reference at $reference (set FLOWGRAD_TORCH_REFERENCE); running flowgrad only" >&2
  have_torch=0
elif ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "compare.sh: python3-torch is not installed (apt-get install python3-torch); running flowgrad only" >&2
  have_torch=0
fi
torch_env=()
if [[ -z ${OPENBLAS_CORETYPE:-} ]] && grep -qw avx512f /proc/cpuinfo; then
  torch_env=(OPENBLAS_CORETYPE=SkylakeX)
fi

# run KIND CMD...: runs under /usr/bin/time -v; prints the program's last JSON line with
# "rss_kb" added.
run() {
  local timing json rss
  timing=$(mktemp)
  json=$(/usr/bin/time -v -o "$timing" "$@" 2>/dev/null | grep '^{' | tail -1) || true
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$timing")
  rm -f "$timing"
  [[ -n $json ]] || { echo "compare.sh: no result from: $*" >&2; return 1; }
  echo "${json%\}}, \"rss_kb\": ${rss:-0}}"
}
field() {  # field JSON NAME -> the number (or quoted string's text)
  grep -o "\"$2\": *[^,}]*" <<<"$1" | head -1 | sed 's/^[^:]*: *//; s/"//g'
}

declare -A best_ours best_torch min_ours min_torch
echo "flowgrad vs PyTorch: steps $steps, rounds $rounds, threads \"$threads\"; raw results in $out" >&2
: >"$out"
for m in $models; do
  for t in $threads; do
    for ((r = 1; r <= rounds; r++)); do
      echo "  $m, $t thread(s), round $r/$rounds" >&2
      line=$(run "$ours_bin" bench --model "$m" --threads "$t" --steps "$steps")
      echo "{\"side\": \"flowgrad\", \"round\": $r, ${line#\{}" >>"$out"
      key="$m/$t"
      min_ours[$key]=$(awk -v a="$(field "$line" train_step_ms_min)" -v b="${min_ours[$key]:-inf}" 'BEGIN { print (b == "inf" || a < b) ? a : b }')
      if [[ -z ${best_ours[$key]:-} ]] ||
         awk -v a="$(field "$line" train_step_ms_median)" -v b="$(field "${best_ours[$key]}" train_step_ms_median)" 'BEGIN { exit !(a < b) }'; then
        best_ours[$key]=$line
      fi
      if ((have_torch)); then
        line=$(run env "${torch_env[@]}" /usr/bin/python3 "$reference" --model "$m" --threads "$t" --steps "$steps")
        echo "{\"side\": \"torch\", \"round\": $r, ${line#\{}" >>"$out"
        min_torch[$key]=$(awk -v a="$(field "$line" train_step_ms_min)" -v b="${min_torch[$key]:-inf}" 'BEGIN { print (b == "inf" || a < b) ? a : b }')
        if [[ -z ${best_torch[$key]:-} ]] ||
           awk -v a="$(field "$line" train_step_ms_median)" -v b="$(field "${best_torch[$key]}" train_step_ms_median)" 'BEGIN { exit !(a < b) }'; then
          best_torch[$key]=$line
        fi
      fi
    done
  done
done

printf '\n%-8s %3s | %10s %10s %6s | %9s %9s %6s | %8s %8s | %8s %8s %6s | %s\n' model thr "ours ms" "torch ms" ratio \
  "ours min" "torch min" ratio "ours GF/s" "torch GF/s" "ours MB" "torch MB" ratio "blas core (ours)"
for m in $models; do
  for t in $threads; do
    o=${best_ours[$m/$t]}
    ms=$(field "$o" train_step_ms_median) gflop=$(field "$o" gflop_per_step) rss=$(field "$o" rss_kb)
    core=$(field "$o" blas_core)
    if ((have_torch)); then
      p=${best_torch[$m/$t]}
      tms=$(field "$p" train_step_ms_median) trss=$(field "$p" rss_kb) tmin=${min_torch[$m/$t]}
    else
      tms=nan trss=nan tmin=nan
    fi
    awk -v m="$m" -v t="$t" -v ms="$ms" -v tms="$tms" -v gf="$gflop" -v rss="$rss" -v trss="$trss" -v core="$core" \
        -v omin="${min_ours[$m/$t]}" -v tmin="$tmin" 'BEGIN {
      r = (tms == "nan") ? "-" : sprintf("%.2f", ms / tms)
      rr = (trss == "nan") ? "-" : sprintf("%.2f", rss / trss)
      tg = (tms == "nan") ? "-" : sprintf("%.1f", gf / tms * 1000)
      tm = (trss == "nan") ? "-" : sprintf("%.0f", trss / 1024)
      tt = (tms == "nan") ? "-" : sprintf("%.1f", tms)
      tn = (tmin == "nan") ? "-" : sprintf("%.1f", tmin)
      rn = (tmin == "nan") ? "-" : sprintf("%.2f", omin / tmin)
      printf "%-8s %3d | %10.1f %10s %6s | %9.1f %9s %6s | %8.1f %8s | %8.0f %8s %6s | %s\n", m, t, ms, tt, r, omin, tn, rn, gf / ms * 1000, tg, rss / 1024, tm, rr, core
    }'
  done
done
echo
echo "ms: median training step (zero grad, forward, -mean log p, backward, Adam); best of $rounds rounds."
echo "min: fastest single step over all rounds (less sensitive to other load than the median)."
echo "GF/s: convolution and matmul FLOPs of one step (counted from flowgrad's graph; the"
echo "architectures are the same) per median step. MB: peak RSS of the whole process (/usr/bin/time -v)."
