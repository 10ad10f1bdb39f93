"""Adam's update on CPU: torch's three kernels (fused, foreach, one tensor at a time) on the parameters
of the default VAE and of a three-group hierarchy, random gradients, median of --steps timed updates
after a warm-up. The update is elementwise, so it is the same function whatever the kernel; the fused
one is what the fast step uses (practice.make_optimizer).

    python bench/optimizer_kernels.py --steps 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from common import machine, write_record  # a script beside this one
from pyro_vae.config import Config
from pyro_vae.models import build_model

KERNELS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "one tensor at a time": {"foreach": False}}


def time_updates(parameters: list[torch.Tensor], options: dict, steps: int) -> float:
    optimizer = torch.optim.Adam(parameters, lr=1e-3, **options)
    seconds = []
    for step in range(steps + 5):
        started = time.perf_counter()
        optimizer.step()
        if step >= 5:
            seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    figures = {}
    for name, groups in (("default VAE 784-512-512-32", 1), ("3 groups 32-16-8, same widths", 3)):
        model = build_model(Config(stochastic_layers=groups, image_shape=(1, 28, 28)))
        parameters = [torch.nn.Parameter(parameter.detach().clone()) for parameter in model.parameters()]
        for parameter in parameters:
            parameter.grad = torch.randn_like(parameter)
        figures[name] = {"parameters": sum(p.numel() for p in parameters)}
        for kernel, options in KERNELS.items():
            figures[name][kernel] = time_updates(parameters, options, args.steps) * 1e3
        print(name, {key: round(value, 2) for key, value in figures[name].items()}, "(ms per update)")
    write_record("optimizer-kernels", "cpu", {"machine": machine("cpu"), "command": " ".join(sys.argv),
                                              "unit": "ms per update, median", "figures": figures})  # fmt: skip


if __name__ == "__main__":
    main()
