"""How fast pyro-vae trains and evaluates, against a plain PyTorch floor and Pyro's own VAE example.

Sections (each on by default; --only picks some):
  steps    Training throughput, 784-400-50 at batch 128 (with --network conv: the convolutional
           encoder and decoder of `--network conv`, channels 32,64,128, z 50): pyro-vae's SVI step (fast path and
           classic SVI; with --jit the JIT ELBO, with --compile torch.compile'd networks and their
           compile time) against a plain PyTorch loop with the same networks, loss, Adam, batches
           and binarized images, made before the clock starts (the data path is timed apart, in
           `data`). Variants take turns epoch by epoch, so drifts in machine speed hit all alike;
           median of --epochs timed epochs after --warmup.
  data     Seconds per epoch spent making the training batches: pyro-vae's (gather uint8 rows,
           make them float and binarize them, per batch) against float32 images binarized whole
           once per epoch and gathered per batch (what pyro-vae did before any source of images
           came in, and what the floor's script does).
  overhead Pyro's fixed cost per step, apart from arithmetic: milliseconds per step of the fast step
           and of the plain loop on a tiny network (784-8-2, batch 4), where almost nothing is
           computed.
  process  The whole `pyro-vae train` process (start-up, data, per-epoch test ELBO, checkpoints)
           against bench/plain_vae.py doing the same, --process-epochs epochs each, alternating.
  evaluate Seconds per 1,000 test images for ELBO + IWAE (k=1000) of the trained 784-400-50 VAE.
  quality  Time to quality: wall time from launching `pyro-vae train` (defaults) until its test
           ELBO first passes -100 nats/image; with --pyro-example DIR also for Pyro's
           examples/vae/vae.py in DIR (a copy outside this repository), at its own settings.

Each section is a module beside this script (steps.py, data_speed.py, overhead.py, process_speed.py,
evaluate_speed.py, quality.py; what they share is common.py). Prints a summary and writes a JSON
record (machine, versions, figures) into bench/results/.

    python bench/throughput.py --device cpu --pyro-example /tmp/pyro-example
"""

from __future__ import annotations

import argparse
import time

import pyro
import torch

from common import NETWORKS, machine, write_record
from data_speed import time_data
from evaluate_speed import time_evaluate
from overhead import time_overhead
from process_speed import time_process
from quality import QUALITY, quality
from steps import time_steps
from pyro_vae.data import load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per variant (steps)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--chunk-steps", type=int, default=10, help="steps per turn (steps)")
    parser.add_argument("--process-epochs", type=int, default=5)
    parser.add_argument("--process-repeats", type=int, default=2)
    parser.add_argument("--quality-limit", type=float, default=900.0, help="seconds before giving up")
    parser.add_argument("--jit", action="store_true", help="also time the fast step with JitTraceMeanField_ELBO")
    parser.add_argument("--compile", action="store_true", help="also time the fast step with torch.compile'd networks")
    parser.add_argument("--pyro-example", help="folder holding a copy of Pyro's examples/vae (vae.py, utils/)")
    parser.add_argument("--only", nargs="+", choices=["steps", "data", "overhead", "process", "evaluate", "quality"])
    parser.add_argument("--data-dir")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="mlp", help="the networks of steps")
    args = parser.parse_args()
    sections = set(args.only or ["steps", "data", "overhead", "process", "evaluate", "quality"])
    record = {"machine": machine(args.device), "device": args.device, "batch_size": args.batch_size,
              "network": NETWORKS[args.network], "started": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
    data = load_mnist(args.data_dir, torch.device(args.device), binarize=True)
    pyro.set_rng_seed(0)
    if sections & {"steps", "evaluate"}:
        print("steps: seconds of training steps per epoch", flush=True)
        record["steps"], trained = time_steps(args, data)
        for name, figures in record["steps"].items():
            print(f"  {name:20s} {figures['median_seconds_per_epoch']:6.2f} s/epoch  "
                  f"{figures['images_per_second']:8.0f} images/s  {figures['ratio_to_floor']:.3f}x the floor")  # fmt: skip
            if "compile_seconds" in figures:
                print(f"  {'':20s} first step, compiling included: {figures['compile_seconds']:.1f} s")
    if "data" in sections:
        record["data"] = time_data(args, data)
        for name, figures in record["data"].items():
            print(f"  data, {name}: {figures['median_seconds_per_epoch']:.3f} s/epoch", flush=True)
    if "overhead" in sections:
        record["overhead"] = time_overhead(args)
        print(f"overhead: {record['overhead']}", flush=True)
    if "evaluate" in sections:
        record["evaluate"] = time_evaluate(args, trained, data)
        print(f"evaluate: {record['evaluate']}", flush=True)
    if "process" in sections:
        print(f"process: {args.process_epochs} epochs, whole process", flush=True)
        record["process"] = time_process(args)
        print(f"  ratio {record['process']['ratio']:.3f}", flush=True)
    if "quality" in sections:
        print(f"quality: wall time until the test ELBO passes {QUALITY:g}", flush=True)
        record["quality"] = quality(args)
    write_record("throughput", args.device, record)


if __name__ == "__main__":
    main()
