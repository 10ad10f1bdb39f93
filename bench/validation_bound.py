"""The IWAE bound of a run on its own validation split (``--validation``), for choosing a recipe
without reading the test split: the ELBO (k=1) against tighter bounds, on the first ``--images``
validation images, the draws keyed by the seed and each chunk.

    python bench/validation_bound.py results/deep-mlp --images 1000 --k 1 100 1000
"""

from __future__ import annotations

import argparse
import time

import torch

from pyro_vae.bounds import split_bounds
from pyro_vae.data import load_data
from pyro_vae.errors import PyroVAEError
from pyro_vae.runs import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    run = load_run(args.run, device=args.device)
    validation = load_data(run.config, run.device).validation
    if validation is None:
        raise PyroVAEError(f"{args.run} was trained without --validation: it has no validation split")
    images = validation.take(torch.arange(min(args.images, len(validation)), device=validation.labels.device))
    labels = True if run.vae.reads_labels else None
    epoch = run.metrics[-1]["epoch"] if run.metrics else 0
    for k in args.k:
        started = time.perf_counter()
        bounds = split_bounds(run.vae, images, labels, k, 1000 if k == 1 else 200, seed=0, stream="validation")[0]
        print(f"{args.run} epoch {epoch}, {len(images)} validation images, k={k}: {bounds.mean():.2f} "
              f"+- {bounds.std() / len(bounds) ** 0.5:.2f} nats ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
