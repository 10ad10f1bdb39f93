"""process: the whole `pyro-vae train` process (start-up, data, per-epoch test ELBO, checkpoints)
against bench/plain_vae.py doing the same, alternating (run by throughput.py)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PYRO_VAE

def time_process(args) -> dict:
    epochs = str(args.process_epochs)
    seconds = {"pyro-vae train": [], "plain_vae.py": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.process_repeats):
            commands = {
                "pyro-vae train": [PYRO_VAE, "train", "--epochs", epochs, "--hidden-dims", "400", "--z-dim", "50",
                                   "--device", args.device, "--quiet", "--no-plot", "--out", f"{scratch}/pyro{repeat}"],
                "plain_vae.py": [sys.executable, str(Path(__file__).parent / "plain_vae.py"), "--epochs", epochs,
                                 "--device", args.device, "--out", f"{scratch}/plain{repeat}"],
            }  # fmt: skip
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                seconds[name].append(time.perf_counter() - started)
                print(f"  {name}: {seconds[name][-1]:.1f} s", flush=True)
    pyro_median, plain_median = (statistics.median(seconds[name]) for name in seconds)
    return {"epochs": args.process_epochs, "seconds": seconds, "median_seconds": {"pyro-vae train": pyro_median,
            "plain_vae.py": plain_median}, "ratio": pyro_median / plain_median}  # fmt: skip
