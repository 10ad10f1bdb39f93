"""What a resume costs: wall time of `pyro-vae train --resume RUN --epochs 2` (one more epoch, from a
1-epoch checkpoint) against `pyro-vae train --epochs 1` (one epoch from scratch), same network.

    python bench/resume_cost.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    executable = shutil.which("pyro-vae")
    fresh, resumed = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            run = Path(scratch) / f"run{repeat}"
            fresh.append(timed([executable, "train", "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(run)]))
            resumed.append(timed([executable, "train", "--resume", str(run), "--epochs", "2", "--quiet"]))
    record = {
        "fresh_one_epoch_seconds": fresh,
        "resumed_one_epoch_seconds": resumed,
        "median_fresh": statistics.median(fresh),
        "median_resumed": statistics.median(resumed),
        "median_overhead_seconds": statistics.median(r - f for r, f in zip(resumed, fresh)),
    }
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
