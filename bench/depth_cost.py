"""What depth costs: seconds per training epoch of the top-down hierarchy (--stochastic-layers N)
against the one-group model of the same widths (the default 784-512-512, z_1 of 32 dimensions, the
groups above it halving), the variants taking turns epoch by epoch so that the machine's drift hits
all alike; median of --epochs timed epochs each, on the 60,000 training digits.

A group below the top adds, per image, its top-down cell (the state update and the prior's head, in
the model and again in the guide) and the posterior's head, each half as wide as the last hidden
layer, and one bottom-up layer.

    python bench/depth_cost.py --device cpu --groups 2 3 5 --epochs 3
"""

from __future__ import annotations

import argparse
import sys

import pyro
import torch

from pyro_vae.config import Config
from pyro_vae.data import load_mnist
from pyro_vae.inference import make_svi
from pyro_vae.models import build_model, parameter_count

from common import alternate_epochs, machine, write_record  # a script beside this one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--groups", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per variant")
    args = parser.parse_args()
    data = load_mnist(None, torch.device(args.device), binarize=True)
    variants, parameters = {}, {}
    for groups in [1, *args.groups]:
        config = Config(device=args.device, stochastic_layers=groups, image_shape=data.image_shape)
        pyro.clear_param_store()
        vae = build_model(config).to(args.device)
        name = f"{groups} group{'s' if groups > 1 else ''} {'-'.join(map(str, config.group_dims))}"
        variants[name] = (vae, make_svi(vae, config, len(data.train)), data)
        parameters[name] = parameter_count(config)
    reference = next(iter(variants))
    figures = alternate_epochs(variants, args.epochs, args.device, reference=reference)
    for name, figure in figures.items():
        figure["parameters"] = parameters[name]
        print(f"{name}: {figure['seconds_per_epoch']:.2f} s per epoch, {figure['x_reference']:.2f}x one group's, "
              f"{parameters[name]:,} parameters")  # fmt: skip
    write_record("depth-cost", args.device, {"machine": machine(args.device), "command": " ".join(sys.argv),
                                             "network": "784-512-512, z_1 32, batch 128, --elbo analytic",
                                             "figures": figures})  # fmt: skip


if __name__ == "__main__":
    main()
