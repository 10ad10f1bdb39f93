"""overhead: Pyro's fixed cost per step apart from arithmetic, milliseconds per step of the fast step
and of the plain loop on a tiny network (784-8-2, batch 4) (run by throughput.py)."""

from __future__ import annotations

import time

import pyro
import torch

import plain_vae  # the floor, a script beside this one
from pyro_vae.config import Config
from pyro_vae.data import binarize
from pyro_vae.inference import make_svi
from pyro_vae.model import VAE

def time_overhead(args, steps: int = 2000) -> dict:
    tiny = Config(hidden_dims=(8,), z_dim=2, device=args.device)
    x = binarize(torch.rand(4, 784, device=args.device))
    pyro.clear_param_store()
    vae = VAE(tiny).to(args.device)
    svi = make_svi(vae, tiny, len(x))
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3, fused=True)

    def gaussian_encoder(x):
        q = vae.posterior(x).base_dist
        return q.loc, q.scale

    def pyro_step():
        with svi.hot_path():
            svi.step(1, x, None)

    def plain_step():
        loss = plain_vae.negative_elbo(gaussian_encoder, vae.decoder, x)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()

    milliseconds = {}
    for name, step in (("pyro-vae", pyro_step), ("plain PyTorch", plain_step)):
        for _ in range(200):
            step()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        milliseconds[name] = (time.perf_counter() - started) * 1000 / steps
    return {"ms_per_step": milliseconds, "pyro_overhead_ms": milliseconds["pyro-vae"] - milliseconds["plain PyTorch"]}
