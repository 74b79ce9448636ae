#!/usr/bin/env bash
# Reproduces the training figures of docs/TRAINING.md: each row is one `flowgrad train` run
# on Fashion-MNIST (or CIFAR-10) with 2 threads, one at a time; prints one tab-separated
# line per run: name, final test bits/dim, best test bits/dim of the run, steps.
#   bash bench/train_runs.sh ablations      # the 4-minute tables (about 2.1 hours)
#   bash bench/train_runs.sh hour           # the four 60-minute runs (about 4 hours)
#   bash bench/train_runs.sh dequantization # uniform against variational, 4 minutes (20 minutes)
#   bash bench/train_runs.sh NAME MINUTES [train options]   # one run of your own
# Needs a quiet machine: the budgets are wall time. Run directories go to runs/table/.
set -euo pipefail
cd "$(dirname "$0")/.."
exe=build/apps/flowgrad
[[ -x $exe ]] || { echo "build first: bash scripts/setup.sh && ninja -C build" >&2; exit 1; }
out_root=runs/table
mkdir -p "$out_root"

one() {  # NAME MINUTES OPTIONS...
  local name=$1 minutes=$2
  shift 2
  local out=$out_root/$name
  rm -rf "$out"
  "$exe" train --minutes "$minutes" --threads 2 --out "$out" "$@" >"$out_root/$name.log" 2>&1
  python3 - "$out" "$name" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
bpd = [r["test_bpd"] for r in rows if r["test_bpd"] is not None]
print(f"{sys.argv[2]}\t{bpd[-1]:.4f}\t{min(bpd):.4f}\t{rows[-1]['step']}", flush=True)
EOF
}

# The previous defaults, written out (the form and recipe of the PyTorch reference).
old="--model glow --dataset fashion-mnist --lr 1e-3 --lr-decay none --ema 0 --clip 100 --clip-factor 0
     --logit-alpha 0 --scale-clamp 0 --no-learn-top"
# Every piece, at the old rate and size.
all="$old --logit-alpha 0.05 --learn-top --scale-clamp 2 --lr-decay cosine --ema 0.999 --clip 0 --clip-factor 5"
new="--model glow --dataset fashion-mnist"

case "${1:-}" in
  ablations)
    # Each change alone, on the old defaults.
    one base 4 $old
    one alone_logit 4 $old --logit-alpha 0.05
    one alone_learn_top 4 $old --learn-top
    one alone_scale_clamp 4 $old --scale-clamp 2
    one alone_cosine 4 $old --lr-decay cosine
    one alone_ema 4 $old --ema 0.999
    one alone_spike_clip 4 $old --clip 0 --clip-factor 5
    one alone_net_actnorm 4 $old --net-actnorm
    one alone_adamax 4 $old --optimizer adamax --lr 2e-3
    # Together, then the learning rate, size and logit alpha on top.
    one logit_top 4 $old --logit-alpha 0.05 --learn-top
    one all_lr1e-3 4 $all
    one all_lr2e-3 4 $all --lr 2e-3
    one all_lr4e-3 4 $all --lr 4e-3
    one all_lr8e-3 4 $all --lr 8e-3
    one all_lr1e-3_hidden96 4 $all --hidden 96
    one all_lr4e-3_hidden96 4 $all --lr 4e-3 --hidden 96
    one all_lr4e-3_K8_hidden48 4 $all --lr 4e-3 --flow-steps 8 --hidden 48
    one all_lr4e-3_net_actnorm 4 $all --lr 4e-3 --net-actnorm
    one all_batch128_lr6e-3 4 $all --batch 128 --lr 6e-3
    one all_lr4e-3_ema0.99 4 $all --lr 4e-3 --ema 0.99
    one all_lr4e-3_warmup500 4 $all --lr 4e-3 --warmup 500
    one all_lr4e-3_alpha0.1 4 $all --lr 4e-3 --logit-alpha 0.1
    one all_lr4e-3_alpha0.01 4 $all --lr 4e-3 --logit-alpha 0.01
    one all_lr4e-3_alpha0.001 4 $all --lr 4e-3 --logit-alpha 0.001
    one default 4 $new   # = all, lr 4e-3, logit alpha 1e-5
    # Real NVP and NICE: the peak rate (small sizes; NICE keeps 1e-3, Real NVP takes 3e-3).
    one realnvp_lr1e-3 4 --model realnvp --dataset fashion-mnist --lr 1e-3
    one realnvp_lr2e-3 4 --model realnvp --dataset fashion-mnist --lr 2e-3
    one realnvp_lr4e-3 4 --model realnvp --dataset fashion-mnist --lr 4e-3
    one nice_lr1e-3 4 --model nice --dataset fashion-mnist --lr 1e-3
    one nice_lr3e-3 4 --model nice --dataset fashion-mnist --lr 3e-3
    ;;
  dequantization)
    # The default Glow and Real NVP, uniform against variational dequantization (Flow++).
    for model in glow realnvp; do
      one ${model}_uniform 4 --model $model --dataset fashion-mnist
      one ${model}_variational 4 --model $model --dataset fashion-mnist --dequantization variational
    done
    ;;
  hour)
    one glow_60min 60 --model glow --dataset fashion-mnist
    one realnvp_60min 60 --model realnvp --dataset fashion-mnist   # lr 3e-3; --lr 1e-3 gave 3.237
    one nice_60min 60 --model nice --dataset fashion-mnist
    one glow_cifar10_60min 60 --model glow --dataset cifar10 --data-dir "${CIFAR10_DIR:?set CIFAR10_DIR}"
    ;;
  "")
    sed -n '2,8p' "$0"
    exit 1
    ;;
  *)
    one "$@"
    ;;
esac
