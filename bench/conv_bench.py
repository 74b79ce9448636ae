#!/usr/bin/env python3
"""conv2d forward+backward: flowgrad vs PyTorch, in the same run, at 1 and 2 threads.

  /usr/bin/python3 bench/conv_bench.py [--build build] [--threads 1 2] [--trials 3] [--reps 10]
         [--batch 64 --channels 64 --size 28 --kernel 3 --padding 1]

Default: 64->64 3x3 pad 1 on a 64x64x28x28 float32 batch, gradients for input, weight
and bias. Each trial runs both programs once (alternating, so background load hits both
alike); the best trial of each is kept. Target: flowgrad <= 1.2x PyTorch's time.
PyTorch runs with OPENBLAS_CORETYPE=SkylakeX and torch.set_num_threads(n) (it uses
oneDNN for this op); flowgrad's bench picks its OpenBLAS kernels itself.
"""
import argparse, json, os, subprocess, sys

TORCH_SNIPPET = r"""
import json, sys, time, torch, torch.nn.functional as F
n, batch, cin, cout, size, k, pad, reps = map(int, sys.argv[1:9])
torch.set_num_threads(n)
torch.manual_seed(0)
x = torch.randn(batch, cin, size, size, requires_grad=True)
w = (torch.rand(cout, cin, k, k) * 0.1 - 0.05).requires_grad_()
b = (torch.rand(cout) * 0.1 - 0.05).requires_grad_()
g = None
ms, cpu = [], []
for r in range(reps + 2):
    x.grad = w.grad = b.grad = None
    t0, c0 = time.perf_counter(), time.thread_time()
    y = F.conv2d(x, w, b, padding=pad)
    if g is None:
        g = torch.randn_like(y)
    y.backward(g)
    t, c = (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000
    if r >= 2:
        ms.append(t)
        cpu.append(c)
ms.sort()
oh = size + 2 * pad - k + 1
flop = 3 * 2.0 * batch * cout * cin * k * k * oh * oh
print(json.dumps({"impl": "torch", "threads": n, "ms_median": ms[len(ms) // 2], "ms_min": ms[0],
                  "gflops": flop / ms[0] / 1e6, "thread_cpu_ms_min": min(cpu), "torch": torch.__version__,
                  "mkldnn": torch.backends.mkldnn.is_available()}))
"""


def run(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(here, "..", "build"),
                    help="meson build dir holding bench/conv_bench")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--padding", type=int, default=1)
    a = ap.parse_args()
    exe = os.path.join(a.build, "bench", "conv_bench")
    if not os.path.exists(exe):
        sys.exit(f"conv_bench.py: {exe} not found; build it: ninja -C {a.build} bench/conv_bench")
    shape = [a.batch, a.channels, a.channels, a.size, a.kernel, a.padding]
    ok = True
    for n in a.threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n))
        torch_env = dict(env, OPENBLAS_CORETYPE="SkylakeX")
        ours, theirs = [], []
        for _ in range(a.trials):
            ours.append(run([exe, "--threads", str(n), "--batch", str(a.batch), "--in", str(a.channels),
                             "--out", str(a.channels), "--size", str(a.size), "--kernel", str(a.kernel),
                             "--padding", str(a.padding), "--reps", str(a.reps)], env))
            theirs.append(run(["/usr/bin/python3", "-c", TORCH_SNIPPET, str(n)] +
                              [str(v) for v in shape] + [str(a.reps)], torch_env))
        best = lambda rs, key: min(r[key] for r in rs)
        o_min, t_min = best(ours, "ms_min"), best(theirs, "ms_min")
        o_med, t_med = best(ours, "ms_median"), best(theirs, "ms_median")
        ratio = o_min / t_min
        ok = ok and ratio <= 1.2
        print(json.dumps({
            "threads": n, "batch": a.batch, "channels": a.channels, "size": a.size, "kernel": a.kernel,
            "flowgrad_ms_min": round(o_min, 2), "flowgrad_ms_median": round(o_med, 2),
            "flowgrad_gflops": round(max(r["gflops"] for r in ours), 1),
            "torch_ms_min": round(t_min, 2), "torch_ms_median": round(t_med, 2),
            "torch_gflops": round(max(r["gflops"] for r in theirs), 1),
            "ratio_min": round(ratio, 3), "ratio_median": round(o_med / t_med, 3),
            # One thread: CPU time of the computing thread, unaffected by other processes.
            **({"ratio_thread_cpu": round(best(ours, "thread_cpu_ms_min") /
                                          best(theirs, "thread_cpu_ms_min"), 3)} if n == 1 else {}),
            "openblas_core": ours[0]["openblas_core"], "target_met": ratio <= 1.2}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
