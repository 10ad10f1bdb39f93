"""What each process of a torchrun-started test does (tests/test_distributed.py); prints one JSON line
per result, tagged with its rank, for the test to read.

    torchrun --standalone --nproc-per-node 2 tests/distributed_worker.py train OUT CONFIG_JSON...
    torchrun --standalone --nproc-per-node 2 tests/distributed_worker.py step OUT

``train``: trains each configuration (a JSON object of Config fields) into OUT/<i>, and reports this
process's weights fingerprint and the files it opened for writing (from a Python audit hook, an
observation: nothing is replaced). ``step``: one SVI step of the default VAE on this process's half of
a fixed batch of 128 test images, its draws taken from the one stream a single process would use
(rank 1 first skips rank 0's draws); writes the weights and Adam's first moment to OUT/step-<rank>.pt.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from pyro_vae import Config, train
from pyro_vae.checkpoint import weights_fingerprint
from pyro_vae.data import load_data
from pyro_vae.distributed import join, leave
from pyro_vae.inference import make_svi
from pyro_vae.models import build_model

STEP_BATCH = 128
STEP_SEED = 123


def written_files() -> list[str]:
    """Paths this process opens for writing, or renames onto, from now on."""
    written = []

    def hook(event, arguments):
        if event == "open" and isinstance(arguments[0], (str, Path)) and any(mode in str(arguments[1] or "") for mode in "wax+"):
            written.append(str(arguments[0]))
        elif event == "os.rename":
            written.append(str(arguments[1]))

    sys.addaudithook(hook)
    return written


def report(**values) -> None:
    print(json.dumps({"rank": int(os.environ.get("RANK", "0")), **values}), flush=True)


def train_each(out: Path, configs: list[str]) -> None:
    written = written_files()
    for number, text in enumerate(configs):
        run = train(Config(**json.loads(text)), out=out / str(number), quiet=True, echo=None)
        mine = [path for path in written if Path(path).resolve().is_relative_to(out.resolve())]
        report(config=number, fingerprint=weights_fingerprint(run.vae), written=mine, world_size=run.config.world_size)
        written.clear()


def one_step(out: Path) -> None:
    """The half batch's step; with 2 processes the halves' gradients are summed before Adam."""
    world, device = join("cpu")
    config = Config(likelihood="bernoulli", device="cpu")
    images = load_data(config, device).test.floats()[:STEP_BATCH]
    torch.manual_seed(0)
    vae = build_model(config)
    svi = make_svi(vae, config, len(images), world=world)
    half = STEP_BATCH // world.size
    torch.manual_seed(STEP_SEED)
    if world.rank == 1:
        torch.randn(half, config.z_dim)  # rank 0's draws of the one stream
    svi.step(1, images[world.rank * half : (world.rank + 1) * half], None)
    first_moments = [state["exp_avg"] for state in svi.optim.state_dict()["state"].values()]
    torch.save({"weights": vae.state_dict(), "exp_avg": first_moments}, out / f"step-{world.rank}.pt")
    report(stepped=True)


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    try:
        train_each(out, sys.argv[3:]) if mode == "train" else one_step(out)
    finally:
        leave()
