"""Which conditional-VAE design draws the digit you ask for? Trains each variant on MNIST and prints,
after every epoch, the test ELBO (log p(x|y) bound) and the digit accuracy of `--digit d` samples
under a CNN classifier trained here on the MNIST training split.

    python bench/cvae_design.py --epochs 10 --out results/cvae-design
    python bench/cvae_design.py --network conv --epochs 3 --out results/cvae-design-conv \
        --variants "label at input only" "every layer, label x30 (default)"

Writes per-epoch records to OUT/cvae-design.jsonl and a table to OUT/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from pyro_vae import Config, train
from pyro_vae.classifier import accuracy, digit_accuracy, train_classifier
from pyro_vae.data import load_mnist

VARIANTS = {
    "label at input only": dict(label_every_layer=False, label_scale=1.0),
    "label at every layer": dict(label_every_layer=True, label_scale=1.0),
    "every layer, z=8": dict(label_every_layer=True, label_scale=1.0, z_dim=8),
    "every layer, label x10": dict(label_every_layer=True, label_scale=10.0),
    "every layer, label x30 (default)": dict(label_every_layer=True, label_scale=30.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("results/cvae-design"))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--network", choices=("mlp", "conv"), default="mlp",
                        help="conv: the label is a per-channel bias at every convolution (or the first only)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    grey = load_mnist(args.data_dir, torch.device("cpu"), binarize=False)
    classifier = train_classifier(grey.train)
    real = accuracy(classifier, grey.test.images, grey.test.labels)
    print(f"classifier accuracy on real test digits: {real:.4f}", flush=True)
    records = []
    for name in args.variants:
        config = Config(conditional=True, epochs=args.epochs, device="cpu", data_dir=args.data_dir,
                        network=args.network, **VARIANTS[name])  # fmt: skip

        def report(record, vae, run_dir, name=name):
            per_digit = digit_accuracy(classifier, vae)
            row = {"variant": name, "epoch": record["epoch"], "test_elbo": record["test_elbo"],
                   "digit_accuracy": sum(per_digit) / 10, "per_digit": per_digit,
                   "seconds": record["seconds"], "classifier_accuracy": real}
            records.append(row)
            print(json.dumps(row), flush=True)

        run_dir = args.out / "runs" / name.replace(" ", "-").replace(",", "")
        shutil.rmtree(run_dir, ignore_errors=True)
        train(config, out=run_dir, quiet=True, echo=None, on_epoch=report)
    with open(args.out / "cvae-design.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in records)
    write_table(records, args, real)


def write_table(records, args, real) -> None:
    epochs = sorted({1, 2, 3, 5, args.epochs} & set(range(1, args.epochs + 1)))
    header = "| variant | " + " | ".join(f"epoch {e}" for e in epochs) + " |"
    lines = [
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Digit accuracy of 200 samples per digit (test ELBO in nats/image); classifier: {real:.2%} on real test digits.",
        "",
        header,
        "|" + "---|" * (len(epochs) + 1),
    ]
    for name in args.variants:
        cells = [
            f"{row['digit_accuracy']:.1%} ({row['test_elbo']:.1f})"
            for e in epochs
            for row in records
            if row["variant"] == name and row["epoch"] == e
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (args.out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
