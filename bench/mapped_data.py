"""A source larger than the memory limit: peak resident memory and seconds per epoch of `pyro-vae train`
on a memory-mapped array, next to the same images held in memory.

Writes a .npy of --images colour images 64x64x3, uint8, (N, H, W, C) as PIL and most image code
hand them over: MNIST's training digits resized to 64x64 and painted in a random colour each (2.5 GB
for 200,000). Then one `pyro-vae train` process per setting, one after the other:

  mapped     PYRO_VAE_MEMORY_LIMIT unset (1 GiB): the training split stays on disk; the first run
             also converts the array to (N, C, H, W) into the cache, --repeat runs read the cache
  in memory  PYRO_VAE_MEMORY_LIMIT=64G: the same images as one uint8 tensor

Each child reports its peak resident memory (VmHWM: getrusage's ru_maxrss would carry the parent's
peak over from the fork) and metrics.jsonl its seconds per epoch.

    python bench/mapped_data.py --images 200000 --dir /tmp/mapped-bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pyro_vae.device import device_name

RESULTS = Path(__file__).parent / "results"
CHILD = """
import sys, time
started = time.perf_counter()
from pyro_vae import Config, train
run = train(Config(dataset=sys.argv[1], likelihood="continuous-bernoulli", epochs=1, hidden_dims=(128,), z_dim=32,
                   device="cpu"), out=sys.argv[2], quiet=True, echo=None)
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))  # exec starts it afresh
print(int(peak.split()[1]) * 1024, time.perf_counter() - started)
"""


def make_array(path: Path, count: int, data_root: str) -> None:
    """MNIST training digits, 64x64, each in a random colour, written chunk by chunk (no map)."""
    import torchvision

    digits = torchvision.datasets.MNIST(data_root, train=True).data
    generator = torch.Generator().manual_seed(0)
    header = {"descr": "|u1", "fortran_order": False, "shape": (count, 64, 64, 3)}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_2_0(handle, header)
        for start in range(0, count, 5000):
            index = torch.arange(start, min(count, start + 5000)) % len(digits)
            grey = torch.nn.functional.interpolate(digits[index, None].float(), size=(64, 64), mode="bilinear")
            colour = 0.3 + 0.7 * torch.rand(len(index), 3, 1, 1, generator=generator)
            images = (grey * colour).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
            handle.write(images.contiguous().numpy().tobytes())


def run_child(array: Path, out: Path, limit: str | None) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PYRO_VAE_MEMORY_LIMIT"}
    if limit is not None:
        env["PYRO_VAE_MEMORY_LIMIT"] = limit
    child = subprocess.run([sys.executable, "-c", CHILD, str(array), str(out)], capture_output=True, text=True, env=env)
    if child.returncode != 0:
        raise SystemExit(child.stderr)
    peak, seconds = child.stdout.split()[-2:]
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return {"peak_rss_bytes": int(peak), "peak_rss_gib": int(peak) / 2**30, "process_seconds": float(seconds),
            "epoch_seconds": metrics["seconds"], "test_elbo": metrics["test_elbo"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/pyro-vae-mapped-bench"))
    parser.add_argument("--data-dir", default=os.environ.get("PYRO_VAE_DATA", "../shared/data"))
    parser.add_argument("--repeat", type=int, default=1, help="mapped runs after the first (reading the cache)")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_CACHE_HOME", str(args.dir / "cache"))
    array = args.dir / f"colour-{args.images}.npy"
    if not array.exists():
        started = time.perf_counter()
        make_array(array, args.images, args.data_dir)
        print(f"wrote {array} ({array.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - started:.0f} s", flush=True)
    figures = {}
    settings = [("mapped, first run (converts into the cache)", None)]
    settings += [(f"mapped, run {number + 2} (reads the cache)", None) for number in range(args.repeat)]
    settings += [("in memory", "64G")]
    for number, (name, limit) in enumerate(settings):
        figures[name] = run_child(array, args.dir / f"run-{time.strftime('%H%M%S')}-{number}", limit)
        print(f"{name}: {json.dumps(figures[name])}", flush=True)
    record = {"bench": "mapped_data", "command": " ".join(sys.argv), "array_bytes": array.stat().st_size,
              "images": args.images, "shape": [64, 64, 3], "network": "12288-128-32 (MLP), batch 128",
              "cpu": device_name(torch.device("cpu")), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "figures": figures}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"mapped-data-cpu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
