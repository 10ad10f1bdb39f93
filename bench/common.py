"""What the benchmarks share: the machine's description, the JSON record each writes into
bench/results/, epochs of several variants taken in turns, and the benchmarked configuration.

The scripts beside this one import it as ``common`` (Python puts a script's own folder first on its
path, so ``python bench/iwae_cost.py`` finds it)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

from pyro_vae.config import Config
from pyro_vae.data import ImageData, Split
from pyro_vae.inference import train_epoch
from pyro_vae.sources.named import MNIST_SHAPE

RESULTS = Path(__file__).parent / "results"
PYRO_VAE = shutil.which("pyro-vae") or str(Path(sys.executable).with_name("pyro-vae"))
NETWORKS = {"mlp": "784-400-50 (ELU)", "conv": "conv 32,64,128 stride 2, z 50 (ELU)"}


def bench_config(args, **changes) -> Config:
    return Config(hidden_dims=(400,), z_dim=50, batch_size=args.batch_size, device=args.device, network=args.network,
                  **changes)  # fmt: skip


NETWORKS = {"mlp": "784-400-50 (ELU)", "conv": "conv 32,64,128 stride 2, z 50 (ELU)"}


def as_data(binary: torch.Tensor, labels: torch.Tensor) -> ImageData:
    """Binary float images as the training data of one timed turn (no test split: it only trains)."""
    return ImageData(train=Split(binary, labels), test=Split(binary[:0], labels[:0]), binarize_train=False, image_shape=MNIST_SHAPE)


def alternate_epochs(variants: dict, epochs: int, device: str, reference: str) -> dict:
    """Seconds per training epoch of each variant, ``{name: (vae, svi, data)}``, taking turns epoch
    by epoch so that the machine's drift hits all alike; returns ``{name: {"seconds_per_epoch"
    (the median), "x_reference" (over ``reference``'s median), "all_seconds"}}``."""
    seconds = {name: [] for name in variants}
    for _ in range(epochs):
        for name, (vae, svi, data) in variants.items():
            synchronize(device)
            started = time.perf_counter()
            train_epoch(svi, vae, data)
            synchronize(device)
            seconds[name].append(time.perf_counter() - started)
            print(f"{name}: {seconds[name][-1]:.2f} s ({len(data.train)} images)", flush=True)
    reference_seconds = statistics.median(seconds[reference])
    return {name: {"seconds_per_epoch": statistics.median(times), "x_reference": statistics.median(times) / reference_seconds,
                   "all_seconds": times} for name, times in seconds.items()}  # fmt: skip


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def machine(device: str) -> dict:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
    }


def write_record(kind: str, device: str, record: dict) -> None:
    """bench/results/{kind}-{device}-{start time}.json"""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{kind}-{device.replace(':', '')}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {path}")
