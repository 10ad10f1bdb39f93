"""steps: training throughput, seconds per epoch of pyro-vae's SVI step (fast and classic; with --jit
the JIT ELBO, with --compile torch.compile'd networks) against a plain PyTorch loop with the same
networks, loss, Adam, batches and binarized images, taking turns every few steps (run by throughput.py)."""

from __future__ import annotations

import statistics
import time

import pyro
import torch
from pyro.infer import JitTraceMeanField_ELBO

import plain_vae  # the floor, a script beside this one
from common import as_data, bench_config, synchronize
from pyro_vae.data import binarize
from pyro_vae.inference import make_svi, train_epoch
from pyro_vae.model import VAE

def time_steps(args, data) -> dict:
    """Median seconds per epoch of training steps for each variant (the floor's binarization excluded)."""
    variants, compile_seconds = {}, None
    for name, fast, jit, compiled in (("pyro-vae", True, False, False), ("pyro-vae --no-fast", False, False, False),
                                      ("pyro-vae, JitTraceMeanField_ELBO", True, True, False),
                                      ("pyro-vae, torch.compile networks", True, False, True)):  # fmt: skip
        if (jit and not args.jit) or (compiled and not args.compile):
            continue
        pyro.clear_param_store()
        vae = VAE(bench_config(args, fast=fast)).to(args.device)
        svi = make_svi(vae, vae.config, len(data.train))
        if jit:
            svi.objective.loss = JitTraceMeanField_ELBO(ignore_jit_warnings=True)
        if compiled:
            compile_seconds = compile_networks(vae, svi, data.train.batch(torch.arange(args.batch_size)), args)
        variants[name] = (vae, lambda binary, labels, svi=svi, vae=vae: train_epoch(svi, vae, as_data(binary, labels)))
    floor_vae = VAE(bench_config(args)).to(args.device)
    decoder = floor_vae.decoder

    def encoder(x):  # the same encoder network, its raw output [mu, log sigma] read as plain_vae.py does
        z_loc, z_log_scale = floor_vae.encoder(x).chunk(2, dim=-1)
        return z_loc, z_log_scale.exp()

    floor_optimizer = torch.optim.Adam(floor_vae.parameters(), lr=1e-3, fused=True)
    variants["plain PyTorch"] = (floor_vae, lambda binary, labels: plain_vae.train_epoch(
        encoder, decoder, floor_optimizer, binary, args.batch_size))  # fmt: skip
    seconds = {name: [] for name in variants}
    names = list(variants)
    chunk = args.chunk_steps * args.batch_size
    for epoch in range(args.warmup + args.epochs):
        # The machine's speed drifts by tens of percent within seconds (shared cores), so variants
        # take turns every few steps, each on the same images, starting in a rotating order.
        order = torch.randperm(len(data.train), device=args.device)
        images, labels = binarize(data.train.batch(order)), data.train.labels[order]
        elapsed = dict.fromkeys(names, 0.0)
        for turn, start in enumerate(range(0, len(data.train), chunk)):
            for name in names[turn % len(names):] + names[: turn % len(names)]:
                pyro.clear_param_store()  # Pyro's one global store must hold this variant's parameters
                synchronize(args.device)
                started = time.perf_counter()
                variants[name][1](images[start : start + chunk], labels[start : start + chunk])
                synchronize(args.device)
                elapsed[name] += time.perf_counter() - started
        if epoch >= args.warmup:
            for name in names:
                seconds[name].append(elapsed[name])
        print(f"  epoch {epoch + 1}: " + ", ".join(f"{n} {t:.2f} s" for n, t in elapsed.items()), flush=True)
    floor = statistics.median(seconds["plain PyTorch"])
    figures = {
        name: {
            "seconds_per_epoch": times,
            "median_seconds_per_epoch": statistics.median(times),
            "images_per_second": len(data.train) / statistics.median(times),
            "ratio_to_floor": statistics.median(times) / floor,
        }
        for name, times in seconds.items()
    }
    if compile_seconds is not None:
        figures["pyro-vae, torch.compile networks"]["compile_seconds"] = compile_seconds
    return figures, variants["pyro-vae"][0]


def compile_networks(vae, svi, batch, args) -> float:
    """torch.compile the encoder and decoder; seconds until the first step is done, which includes
    compiling (the last, shorter batch of an epoch compiles once more, with dynamic shapes)."""
    started = time.perf_counter()
    vae.encoder.compile()
    vae.decoder.compile()
    with svi.hot_path():
        svi.step(1, binarize(batch), None)  # batch: floats in [0, 1]
    synchronize(args.device)
    return time.perf_counter() - started
