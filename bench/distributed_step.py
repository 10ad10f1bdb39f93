"""Where a training step's time goes with one process and with several: the loss and its gradients
on this process's images, the all-reduce of the gradients (``distributed.sum_gradients``), and Adam.

    OMP_NUM_THREADS=2 python bench/distributed_step.py                 # one process, two threads
    torchrun --standalone --nproc-per-node 2 bench/distributed_step.py # two processes, one thread each

Default VAE networks (784-512-512-32, as `pyro-vae train`), global batch 128 of binarized MNIST
test images made before the clock starts; --network conv for the conv VAE. Rank 0 prints one JSON
line: milliseconds per step, median over --steps after --warmup, of each part.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from pyro_vae.config import Config
from pyro_vae.data import load_data
from pyro_vae.distributed import join, leave, sum_gradients
from pyro_vae.inference import make_svi
from pyro_vae.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="mlp", choices=("mlp", "conv"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    world, device = join("cpu")
    config = Config(likelihood="bernoulli", network=args.network, device="cpu")
    images = load_data(config, device).test.floats()[: config.batch_size]
    vae = build_model(config)
    svi = make_svi(vae, config, len(images), world=world)
    parameters = list(vae.parameters())
    mine = images[world.shard(torch.arange(len(images)))]
    parts = {"loss and gradients": [], "all-reduce": [], "adam": [], "step": []}
    for step in range(args.warmup + args.steps):
        started = time.perf_counter()
        loss = svi.objective.loss_and_grads(svi.model, svi.guide, step + 1, mine, None)
        computed = time.perf_counter()
        if world.distributed:
            sum_gradients(parameters, loss, world)
        reduced = time.perf_counter()
        svi.optim.step()
        svi.optim.zero_grad(set_to_none=True)
        done = time.perf_counter()
        if step >= args.warmup:
            for name, seconds in zip(parts, (computed - started, reduced - computed, done - reduced, done - started)):
                parts[name].append(seconds * 1000)
    if world.main:
        print(json.dumps({"processes": world.size, "threads": torch.get_num_threads(), "network": args.network,
                          "images_per_process": len(mine), "gradient_values": sum(p.numel() for p in parameters),
                          "ms_per_step": {name: round(statistics.median(times), 2) for name, times in parts.items()}}))  # fmt: skip
    leave()


if __name__ == "__main__":
    main()
