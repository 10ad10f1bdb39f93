"""What the IWAE objective costs: seconds per training epoch of the default VAE (784-512-512-32)
with --objective iwae at K particles against the ELBO (K=1), the variants taking turns epoch by
epoch so that the machine's drift hits all alike; median of --epochs timed epochs each.

The K draws of a step are one batched pass (a particle plate), so an epoch at K costs less than K
epochs: the encoder runs once per image, and the decoder's K*128 rows make bigger matrix products.

    python bench/iwae_cost.py --device cpu --particles 5 --epochs 3
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
    parser.add_argument("--particles", type=int, nargs="+", default=[5])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per variant")
    args = parser.parse_args()
    data = load_mnist(None, torch.device(args.device), binarize=True)
    variants = {}
    for particles in [1, *args.particles]:
        config = Config(device=args.device, objective="iwae" if particles > 1 else "elbo", particles=particles)
        pyro.clear_param_store()
        vae = build_model(config).to(args.device)
        variants[f"K={particles}"] = (vae, make_svi(vae, config, len(data.train)), data)
    figures = alternate_epochs(variants, args.epochs, args.device, reference="K=1")
    for name, figure in figures.items():
        print(f"{name}: {figure['seconds_per_epoch']:.2f} s per epoch, {figure['x_reference']:.2f}x the ELBO's")
    write_record("iwae-cost", args.device, {"machine": machine(args.device), "command": " ".join(sys.argv),
                                            "network": "784-512-512-32, batch 128", "figures": figures})  # fmt: skip


if __name__ == "__main__":
    main()
