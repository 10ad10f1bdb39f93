"""data: seconds per epoch spent making the training batches, pyro-vae's uint8 rows made float and
binarized per batch against float32 images binarized whole once per epoch (run by throughput.py)."""

from __future__ import annotations

import statistics
import time

from common import synchronize
from pyro_vae.data import batches, binarize

def time_data(args, data, repeats: int = 7) -> dict:
    """Median seconds per epoch of making the shuffled training batches, each way (see ``data``)."""
    grey = data.train.floats()

    def per_batch():  # pyro-vae: uint8 rows to float, binarized, per batch
        for index in batches(len(data.train), args.batch_size, data.train.target, shuffle=True):
            data.train_batch(index)

    def per_epoch():  # float32 images binarized whole, then gathered per batch
        binary = binarize(grey)
        for index in batches(len(data.train), args.batch_size, data.train.target, shuffle=True):
            binary[index]

    seconds = {"uint8, per batch (pyro-vae)": [], "float32, binarized per epoch (before)": []}
    for _ in range(repeats):
        for name, make in zip(seconds, (per_batch, per_epoch)):
            synchronize(args.device)
            started = time.perf_counter()
            make()
            synchronize(args.device)
            seconds[name].append(time.perf_counter() - started)
    return {name: {"median_seconds_per_epoch": statistics.median(times), "seconds": times} for name, times in seconds.items()}
