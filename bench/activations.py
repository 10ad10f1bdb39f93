"""How fast each hidden activation learns: test ELBO after 1 and 2 epochs of the default VAE.

    python bench/activations.py --epochs 2
"""

from __future__ import annotations

import argparse
import json

from pyro_vae import Config, train
from pyro_vae.config import ACTIVATIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="/tmp/pyro-vae-activations")
    args = parser.parse_args()
    for activation in ACTIVATIONS:
        config = Config(epochs=args.epochs, activation=activation, device="cpu", data_dir=args.data_dir)
        run = train(config, out=f"{args.out}/{activation}", quiet=True, echo=None)
        elbos = [round(record["test_elbo"], 1) for record in run.metrics]
        print(json.dumps({"activation": activation, "test_elbo_per_epoch": elbos}), flush=True)


if __name__ == "__main__":
    main()
