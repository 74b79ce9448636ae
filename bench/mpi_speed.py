#!/usr/bin/python3
"""Data-parallel speed on this machine: images/s of a training step of the bench configs
(batch 64) in one process at 1 and at 2 threads, and on 2 ranks x 1 thread, for flowgrad
(`flowgrad bench`, under mpirun for the ranks) and PyTorch (torch_flows.py's bench, under
torchrun with DDP and gloo for the ranks: bench/torch_ddp.py), in the same run.

    /usr/bin/python3 bench/mpi_speed.py [--steps 6] [--rounds 2] [--models nice,realnvp,glow]
                                        [--build build] [--out FILE.jsonl]

Each round runs the six set-ups of a model back to back; the best round (highest images/s)
of each is kept. Needs flowgrad built with MPI (bash scripts/setup.sh --mpi) and
python3-torch; the environment's OPENBLAS_CORETYPE, if set, applies to both sides.
"""
import argparse, json, os, subprocess, sys, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--steps", type=int, default=6)
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--models", default="nice,realnvp,glow")
ap.add_argument("--build", default=os.path.join(root, "build"))
ap.add_argument("--out", default=None)
a = ap.parse_args()
reference = os.environ.get("FLOWGRAD_TORCH_REFERENCE", os.path.join(root, "..", "shared", "reference", "torch_flows.py"))
ours = os.path.join(a.build, "apps", "flowgrad")
mpirun = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2"]
torchrun = ["/usr/bin/torchrun", "--standalone", "--nproc_per_node", "2", "--redirects", "9:0", "--tee", "9:0"]
steps = ["--steps", str(a.steps)]

def setups(model):
    m = ["--model", model]
    return [("flowgrad", "1 x 1", [ours, "bench", *m, "--threads", "1", *steps]),
            ("flowgrad", "1 x 2", [ours, "bench", *m, "--threads", "2", *steps]),
            ("flowgrad", "2 x 1", [*mpirun, ours, "bench", *m, "--threads", "1", *steps]),
            ("torch", "1 x 1", ["/usr/bin/python3", reference, *m, "--threads", "1", *steps]),
            ("torch", "1 x 2", ["/usr/bin/python3", reference, *m, "--threads", "2", *steps]),
            ("torch", "2 x 1", [*torchrun, os.path.join(root, "bench", "torch_ddp.py"), *m, "--threads", "1", *steps])]

def run(cmd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode or not lines:
        sys.exit("mpi_speed: no result from %s\n%s" % (" ".join(cmd), (p.stdout + p.stderr)[-2000:]))
    return json.loads(lines[-1])

out = open(a.out or os.path.join(a.build, time.strftime("mpi-speed-%Y%m%d-%H%M%S.jsonl")), "w")
best = {}
for model in a.models.split(","):
    for r in range(1, a.rounds + 1):
        for side, layout, cmd in setups(model):
            print("  %s %s %s, round %d" % (model, side, layout, r), file=sys.stderr, flush=True)
            j = run(cmd)
            j.update(side=side, layout=layout, round=r)
            out.write(json.dumps(j) + "\n"); out.flush()
            key = (model, side, layout)
            if key not in best or j["images_per_s"] > best[key]["images_per_s"]:
                best[key] = j

print("\nimages/s of a training step, batch 64, best of %d rounds of %d steps (ranks x threads)" % (a.rounds, a.steps))
print("%-8s %-8s | %8s %8s %8s | %10s %10s" % ("model", "side", "1 x 1", "1 x 2", "2 x 1", "2x1 / 1x1", "2x1 / 1x2"))
for model in a.models.split(","):
    for side in ("flowgrad", "torch"):
        v = [best[(model, side, l)]["images_per_s"] for l in ("1 x 1", "1 x 2", "2 x 1")]
        print("%-8s %-8s | %8.1f %8.1f %8.1f | %10.2f %10.2f" % (model, side, *v, v[2] / v[0], v[2] / v[1]))
    print("%-8s %-8s | flowgrad 2 x 1 / PyTorch DDP 2 x 1: %.2f x the images/s" % (
        model, "", best[(model, "flowgrad", "2 x 1")]["images_per_s"] / best[(model, "torch", "2 x 1")]["images_per_s"]))
print("raw results: %s" % out.name)

# Beyond 2 ranks, on paper: weak scaling at 64 images a rank. A step is the compute of 64
# images at 1 thread (measured above) plus a ring allreduce of the gradients, which sends
# and receives 2 (N - 1) / N of them per rank in 2 (N - 1) messages; no overlap assumed.
latency = 10e-6  # seconds a message (a typical 10-100 Gbit/s Ethernet hop)
print("\nweak scaling, 64 images a rank, ring allreduce, %g us a message, no overlap of compute and allreduce" % (latency * 1e6))
print("%-8s %10s %10s | GB/s a rank needs for 90%% efficiency at N ranks" % ("", "", ""))
print("%-8s %10s %10s | %s" % ("model", "params", "step ms", "  ".join("%-13s" % ("N = %d" % n) for n in (8, 64, 256))))
for model in a.models.split(","):
    j = best[(model, "flowgrad", "1 x 1")]
    compute = j["batch"] / j["images_per_s"]  # seconds
    size = 4.0 * j["params"]  # bytes of float32 gradients
    cells = []
    for n in (8, 64, 256):
        budget = compute / 9 - 2 * (n - 1) * latency  # allreduce time that keeps 90% efficiency
        cells.append("%-13s" % ("%.2f" % (2 * (n - 1) / n * size / budget / 1e9) if budget > 0 else "latency-bound"))
    print("%-8s %10d %10.0f | %s" % (model, j["params"], compute * 1000, "  ".join(cells)))
