"""The elementwise kernels behind evaluation and training, timed against torch's own.

On these CPUs torch's ELU, softplus, expm1 and log1p are scalar loops (about 5 ns a value), while
its exp and log are vectorized (under 1 ns). pyro_vae writes ELU and softplus with exp and log
(`networks.elu`, `likelihoods.softplus`); this script shows what that buys, and what the size of
evaluation's decoder chunks does to the cost of one (image, draw) row of the IWAE bound.

Sections, each a median over --repeats turns, the variants taking turns:
  elu       ns per value: evaluation-sized forward (4000x512, no grad) and a training-sized
            forward + backward (128x512)
  softplus  ns per value on 8x500x784 logits
  chunks    microseconds per decoder row (decoder + Bernoulli log-likelihood) of the default
            784-512-512-32 network at 4096 and at 32768 rows per chunk

    python bench/kernels.py --device cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from pyro_vae.config import Config
from pyro_vae.likelihoods import reconstruction_log_likelihood, softplus
from pyro_vae.model import VAE
from pyro_vae.networks import elu


from common import machine, write_record  # a script beside this one


def seconds(function) -> float:
    """Wall time of one call; a GPU's queued kernels are waited for on both sides."""
    synchronize()
    started = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - started


def synchronize() -> None:
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def take_turns(variants: dict, repeats: int, per: float) -> dict:
    """Median time of each variant, divided by ``per``; variants alternate so drifts hit all alike."""
    for function in variants.values():
        function()  # warm-up
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, function in variants.items():
            times[name].append(seconds(function))
    return {name: statistics.median(values) / per for name, values in times.items()}


def time_elu(repeats: int, device: str) -> dict:
    big = torch.randn(4000, 512, device=device) * 2
    small = torch.randn(128, 512, device=device, requires_grad=True)
    upstream = torch.randn(128, 512, device=device)

    def no_grad(activation):
        with torch.no_grad():
            activation(big)

    forward = take_turns({"torch": lambda: no_grad(nn.functional.elu), "pyro_vae": lambda: no_grad(elu)},
                         repeats, big.numel() * 1e-9)  # fmt: skip
    training = take_turns({"torch": lambda: nn.functional.elu(small).backward(upstream),
                           "pyro_vae": lambda: elu(small).backward(upstream)}, repeats, small.numel() * 1e-9)  # fmt: skip
    return {"forward_ns_per_value": forward, "forward_backward_ns_per_value": training}


@torch.no_grad()
def time_softplus(repeats: int, device: str) -> dict:
    logits = torch.randn(8, 500, 784, device=device) * 5
    return take_turns({"torch": lambda: nn.functional.softplus(logits), "pyro_vae": lambda: softplus(logits)},
                      repeats, logits.numel() * 1e-9)  # fmt: skip


@torch.no_grad()
def time_chunks(repeats: int, device: str) -> dict:
    vae = VAE(Config(device=device)).to(device).eval()
    images = (torch.rand(500, 784, device=device) < 0.13).float()

    def row_cost(rows: int):
        draws = rows // images.shape[0]
        z = torch.randn(draws * images.shape[0], vae.config.z_dim, device=device)
        return lambda: reconstruction_log_likelihood(images, vae.decoder(z).reshape(draws, *images.shape), vae.config)

    timed = take_turns({rows: row_cost(rows) for rows in (4096, 32768)}, repeats, 1e-6)
    return {f"{rows}_rows_us_per_row": t / (rows // images.shape[0] * images.shape[0]) for rows, t in timed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    record = {"machine": machine(args.device), "device": args.device, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for name, section in (("elu", time_elu), ("softplus", time_softplus), ("chunks", time_chunks)):
        record[name] = section(args.repeats, args.device)
        print(f"{name}: {json.dumps(record[name])}", flush=True)
    write_record("kernels", args.device, record)


if __name__ == "__main__":
    main()
