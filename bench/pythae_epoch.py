"""An epoch of ``pyro-vae train`` against an epoch of pythae 0.1.2's trainer, what a user might pick
instead, on the same networks (784-512-512-32, ELU, Bernoulli), batch 128, Adam at 1e-3, the 10,000
test images evaluated each epoch; then both models' IWAE bound on the same 2,000 binarized test images.

    python bench/pythae_epoch.py --pythae-python ../pythae-env/bin/python --data-dir ../shared/data

pythae runs in its own environment (bench/pythae_side.py says how to make it) as a subprocess, taking
turns with ``pyro-vae train`` (``--pairs``), each alone on the machine. An epoch's seconds, on both
sides, run from its start to its end: the training steps and the test split's evaluation (pythae's
through a callback, pyro-vae's as its metrics.jsonl records them); neither side's start-up or saving. pyro-vae binarizes the training
images afresh each epoch; pythae has no such option, so it trains on one binarization (seed 0). Both
bounds are scored on pyro-vae's fixed test binarization (the first 2,000 images), k draws each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import PYRO_VAE, machine, write_record

from pyro_vae import Config, load_run
from pyro_vae.bounds import split_bounds
from pyro_vae.data import load_data

PYTHAE_SIDE = Path(__file__).with_name("pythae_side.py")


def shared_images(data_dir: str, scored: int, out: Path) -> torch.Tensor:
    """The training images binarized once (pythae's), the binarized test split, its first ``scored``."""
    data = load_data(Config(data_dir=data_dir), torch.device("cpu"), data_dir=data_dir)
    torch.manual_seed(0)
    train = data.train.floats()
    train = (torch.rand_like(train) < train).to(torch.uint8)
    test = data.test.floats().to(torch.uint8)
    np.savez(out, train=train.numpy(), test=test.numpy(), scored=test[:scored].numpy())
    return test[:scored].float()


def pyro_vae_side(data_dir: str, epochs: int, out: Path, scored: torch.Tensor, k: int) -> dict:
    command = [PYRO_VAE, "train", "--epochs", str(epochs), "--device", "cpu", "--quiet", "--no-plot", "--data-dir",
               data_dir, "--out", str(out)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    epoch_seconds = [json.loads(line)["seconds"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    result = {"command": " ".join(command), "seconds": seconds, "seconds_per_epoch": sum(epoch_seconds) / epochs,
              "epoch_seconds": epoch_seconds}  # fmt: skip
    if k > 0:
        run = load_run(out, device="cpu")
        torch.manual_seed(0)
        bounds = split_bounds(run.vae, scored, None, k, batch_size=100)[0]
        result.update(iwae_bound=bounds.mean().item(), iwae_stderr=(bounds.std() / len(bounds) ** 0.5).item())
    return result


def pythae_side(python: str, images: Path, out: Path, epochs: int, k: int) -> dict:
    command = [python, str(PYTHAE_SIDE), "--data", str(images), "--out", str(out), "--epochs", str(epochs), "--k", str(k)]
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pythae-python", required=True, help="the python of an environment with pythae 0.1.2")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=1, help="alternating pairs of trainings (the bounds: the first)")
    parser.add_argument("--scored", type=int, default=2000, help="test images the IWAE bounds score")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per scored image")
    args = parser.parse_args()
    pairs = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        scored = shared_images(args.data_dir, args.scored, folder / "images.npz")
        for pair in range(args.pairs):
            k = args.k if pair == 0 else 0
            pythae = pythae_side(args.pythae_python, folder / "images.npz", folder / f"pythae{pair}", args.epochs, k)
            ours = pyro_vae_side(args.data_dir, args.epochs, folder / f"pyro-vae{pair}", scored, k)
            pairs.append({"pyro_vae": ours, "pythae": pythae, "epoch_ratio": ours["seconds_per_epoch"] / pythae["seconds_per_epoch"]})
            print(json.dumps(pairs[-1]), flush=True)
        version = subprocess.run([args.pythae_python, "-c", "import importlib.metadata as m; print(m.version('pythae'))"],
                                 check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    record = {
        "machine": machine("cpu"), "pythae_version": version, "epochs": args.epochs, "scored_images": args.scored, "k": args.k,
        "command": " ".join([sys.executable, *sys.argv]), "pairs": pairs,
        "median_epoch_ratio": statistics.median(pair["epoch_ratio"] for pair in pairs),
    }  # fmt: skip
    print(json.dumps(record, indent=1))
    write_record("pythae-epoch", "cpu", record)


if __name__ == "__main__":
    main()
