"""evaluate: seconds per 1,000 test images of the IWAE bound (k=1000) of a trained VAE (run by
throughput.py)."""

from __future__ import annotations

import time

import torch

from common import synchronize
from pyro_vae.bounds import split_bounds

def time_evaluate(args, vae, data, k: int = 1000, images: int = 1000) -> dict:
    vae.eval()
    synchronize(args.device)
    started = time.perf_counter()
    bounds, _, _, _ = split_bounds(vae, data.test.take(torch.arange(images)), None, k, batch_size=500)
    synchronize(args.device)
    seconds = time.perf_counter() - started
    return {"k": k, "images": images, "seconds_per_1000_images": seconds * 1000 / images,
            "iwae_log_likelihood": bounds.mean().item()}  # fmt: skip
