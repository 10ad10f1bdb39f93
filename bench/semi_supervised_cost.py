"""What the semi-supervised objective costs: seconds per training epoch of the conditional VAE with
--labels N (every step an unlabeled batch with y summed over the 10 classes, plus a labeled batch)
against the supervised conditional VAE's epoch over all 60,000 labeled images, default networks
(784-512-512-32), taking turns epoch by epoch; median of --epochs timed epochs each.

The sum over y is one batched pass: encoder and decoder see a (10, batch) block, so the epoch costs
about 10x the decoder and encoder work of a supervised one, and the classifier a little more.

    python bench/semi_supervised_cost.py --device cpu --labels 100 --epochs 2
"""

from __future__ import annotations

import argparse
import sys

import pyro
import torch

from pyro_vae.config import Config
from pyro_vae.data import balanced_labels, keep_labels, load_mnist
from pyro_vae.inference import make_svi
from pyro_vae.models import build_model


from common import alternate_epochs, machine, write_record  # a script beside this one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per variant")
    args = parser.parse_args()
    data = load_mnist(None, torch.device(args.device), binarize=True)
    semi = keep_labels(data, balanced_labels(data.train.labels, args.labels, seed=0, num_classes=len(data.class_names)))
    variants = {}
    for name, labels, split in (("supervised", None, data), (f"labels={args.labels}", args.labels, semi)):
        config = Config(device=args.device, conditional=True, labels=labels)
        pyro.clear_param_store()
        vae = build_model(config).to(args.device)
        variants[name] = (vae, make_svi(vae, config, len(split.train), split.labeled), split)
    figures = alternate_epochs(variants, args.epochs, args.device, reference="supervised")
    for name, figure in figures.items():
        print(f"{name}: {figure['seconds_per_epoch']:.2f} s per epoch, {figure['x_reference']:.2f}x the supervised one")
    write_record("semi-supervised-cost", args.device, {"machine": machine(args.device), "command": " ".join(sys.argv),
                                                       "network": "784-512-512-32, batch 128", "figures": figures})  # fmt: skip


if __name__ == "__main__":
    main()
