"""Every random generator a run draws from, as plain tensors and numbers a checkpoint can hold, and
``draw``: a seeded draw that gives the same numbers on any device.

Resuming restores all of them, so a resumed run makes exactly the draws (batch order, binarization,
z samples) that an uninterrupted one would have made. NumPy's state is stored as a tensor because
``torch.load(weights_only=True)`` refuses NumPy arrays.
"""

from __future__ import annotations

import random

import numpy as np
import pyro.distributions as dist
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


def draw(distribution: dist.Distribution, generator: torch.Generator) -> torch.Tensor:
    """One draw of ``distribution`` seeded from the CPU ``generator``, the same on any device: a
    diagonal Gaussian as loc + scale * eps with eps drawn on the CPU; another distribution (a
    mixture) samples itself under a seed taken from the generator, the run's own generators untouched."""
    base = distribution.base_dist if isinstance(distribution, dist.Independent) else None
    if type(base) is dist.Normal:
        noise = torch.randn(distribution.shape(), generator=generator)
        return base.loc + base.scale * noise.to(base.loc.device)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    cuda_devices = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda_devices):  # the run's own generators stay untouched
        torch.manual_seed(seed)
        return distribution.sample()
