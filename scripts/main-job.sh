#!/usr/bin/env bash
# The main job: set up (Debian packages, build), then train a small Glow on Fashion-MNIST
# for a few minutes on 2 threads, with a progress bar; prints the test bits/dim and
# where the samples are. Extra arguments go to `flowgrad train` (e.g. --minutes 10).
#   bash scripts/main-job.sh [extra train options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
echo "build: compiling flowgrad (first time takes a few minutes on 2 cores)"
ninja -C build apps/flowgrad >build/ninja-main.log 2>&1 || { tail -40 build/ninja-main.log; exit 1; }
run_dir=runs/glow-fashion-mnist-$(date +%Y%m%d-%H%M%S)
exec build/apps/flowgrad train --model glow --dataset fashion-mnist --minutes 4 --threads 2 \
  --out "$run_dir" "$@"
