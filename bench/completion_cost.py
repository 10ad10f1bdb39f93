"""What image completion costs: seconds per training epoch of the completion CVAE
(--visible-quadrants N: recognition, prior and generation networks, the 784 visible pixels at the
encoder's and decoder's inputs, the frozen baseline's forward pass) against the plain VAE's epoch,
default networks (784-512-512-32), taking turns epoch by epoch; median of --epochs timed epochs.
The CVAE epochs are timed after the baseline's (its own epochs cost about one encoder pass each).

    python bench/completion_cost.py --device cpu --visible-quadrants 2 --epochs 3
"""

from __future__ import annotations

import argparse
import sys

import pyro
import torch

from pyro_vae.config import Config
from pyro_vae.data import load_mnist
from pyro_vae.inference import make_svi
from pyro_vae.models import build_model


from common import alternate_epochs, machine, write_record  # a script beside this one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--visible-quadrants", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per variant")
    args = parser.parse_args()
    data = load_mnist(None, torch.device(args.device), binarize=True)
    variants = {}
    for name, quadrants in (("plain VAE", None), (f"completion, {args.visible_quadrants} visible", args.visible_quadrants)):
        config = Config(device=args.device, visible_quadrants=quadrants)
        pyro.clear_param_store()
        vae = build_model(config).to(args.device)
        svi = make_svi(vae, config, len(data.train))
        if quadrants is not None:
            svi.objective.baseline_steps = 0  # time the CVAE's steps, not the baseline's
        variants[name] = (vae, svi, data)
    figures = alternate_epochs(variants, args.epochs, args.device, reference="plain VAE")
    for name, figure in figures.items():
        print(f"{name}: {figure['seconds_per_epoch']:.2f} s per epoch, {figure['x_reference']:.2f}x the plain VAE's")
    write_record("completion-cost", args.device, {"machine": machine(args.device), "command": " ".join(sys.argv),
                                                  "network": "784-512-512-32, batch 128", "figures": figures})  # fmt: skip


if __name__ == "__main__":
    main()
