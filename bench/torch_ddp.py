#!/usr/bin/env python3
"""PyTorch data-parallel yardstick for flowgrad's MPI data-parallel training.

The training step of the PyTorch reference (../shared/reference/torch_flows.py,
bench()) under DistributedDataParallel, gloo backend, on CPU: every rank draws
the same global batch (seed 0), trains on its rows (batch / world size), and
DDP averages the gradients, so each step equals one full-batch step. 3 warm-up
steps, then --steps timed steps; rank 0 prints one JSON line per model with its
own step times (the allreduce keeps the ranks in step).

  torchrun --standalone --nproc_per_node 2 --redirects 9:0 --tee 9:0 \
      bench/torch_ddp.py --model realnvp --threads 1 --steps 6    # or --all

(/usr/bin/torchrun = /usr/bin/python3 -m torch.distributed.run.) Debian 12's
torchrun (torch 1.13 on Python 3.11) dies with "'NoneType' object has no
attribute 'get'" on its default --redirects 0 --tee 0; the map "9:0" (local
rank 9 only) means the same and works. --threads is per rank (it also sets
OMP/OPENBLAS/MKL_NUM_THREADS), --batch is global. The reference's path:
$FLOWGRAD_TORCH_REFERENCE, else ../shared/reference/torch_flows.py beside this
repository. Needs Debian's python3-torch.
"""
import argparse, importlib.util, json, os, sys, time

ap = argparse.ArgumentParser(description="PyTorch DDP (gloo) training-step benchmark")
ap.add_argument("--model", default="realnvp", choices=["nice", "realnvp", "glow"])
ap.add_argument("--all", action="store_true", help="nice, realnvp and glow in turn")
ap.add_argument("--threads", type=int, default=1, help="per rank")
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--batch", type=int, default=64, help="global, split across ranks")
a = ap.parse_args()
if "WORLD_SIZE" not in os.environ:
    sys.exit("torch_ddp.py: launch it with torchrun (see the header of this file)")
if a.batch % int(os.environ["WORLD_SIZE"]):
    sys.exit(f"torch_ddp.py: --batch {a.batch} is not divisible by the world size {os.environ['WORLD_SIZE']}")

# OpenBLAS reads its thread count when it loads, so set it before torch is
# imported; torchrun would otherwise force OMP_NUM_THREADS=1.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(a.threads)

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ref_path = os.environ.get("FLOWGRAD_TORCH_REFERENCE") or os.path.join(root, "../shared/reference/torch_flows.py")
if not os.path.isfile(ref_path):
    sys.exit(f"torch_ddp.py: no reference at {ref_path} (set FLOWGRAD_TORCH_REFERENCE)")
spec = importlib.util.spec_from_file_location("torch_flows", ref_path)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()


def bench(name, threads, steps, batch):
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model, shape = ref.build(name)
    nparams = sum(p.numel() for p in model.parameters())
    model = DDP(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, *shape)  # the same on every rank
    n = batch // world
    x = x[rank * n:(rank + 1) * n].contiguous()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = -model(x).mean()
        loss.backward()  # DDP averages the gradients over the ranks here
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    return {"model": name, "threads": threads, "ranks": world, "batch": batch,
            "params": nparams, "train_step_ms_median": 1000 * med,
            "train_step_ms_min": 1000 * times[0], "images_per_s": batch / med,
            "torch": torch.__version__, "backend": "gloo"}


for m in (["nice", "realnvp", "glow"] if a.all else [a.model]):
    r = bench(m, a.threads, a.steps, a.batch)
    if rank == 0:
        print(json.dumps(r), flush=True)
dist.destroy_process_group()
