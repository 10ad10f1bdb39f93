"""Every random generator a run draws from, as plain tensors and numbers a checkpoint can hold.

Resuming restores all of them, so a resumed run makes exactly the draws (batch order, binarization,
z samples) that an uninterrupted one would have made. NumPy's state is stored as a tensor because
``torch.load(weights_only=True)`` refuses NumPy arrays.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def capture_rng_state() -> dict:
    numpy_name, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        # only if this process used CUDA: asking for its state would initialise it on a CPU run
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "python": random.getstate(),
        "numpy": (numpy_name, torch.from_numpy(numpy_keys.astype(np.int64)), numpy_pos, numpy_has_gauss, numpy_gauss),
    }


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    restore_cuda_rng_state(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_name, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = state["numpy"]
    np.random.set_state((numpy_name, numpy_keys.numpy().astype(np.uint32), numpy_pos, numpy_has_gauss, numpy_gauss))


def restore_cuda_rng_state(states: list) -> None:
    """One generator state per CUDA device the run had; restored for the devices this machine has
    (a run from a 2-GPU machine resumes on a 1-GPU one), and not at all on a machine without CUDA
    or for a run that never used it, so a CPU run never initialises CUDA."""
    if not states or not torch.cuda.is_available():
        return
    for index, device_state in enumerate(states[: torch.cuda.device_count()]):
        torch.cuda.set_rng_state(device_state, device=index)
