"""The training practice that deep VAEs train with (NVAE, Vahdat & Kautz 2020; VDVAE, Child 2021):
the learning rate's warm-up and cosine decay, the optimizer, the gradient-norm clip with the skipping
of non-finite updates, and an exponential moving average of the weights for evaluation and sampling.

Each is a ``Config`` option; the step (inference.py) asks this module, which knows the global step.
"""

from __future__ import annotations

import contextlib
import math

import torch

from .config import Config


def learning_rate(config: Config, step: int, steps_per_epoch: int) -> float:
    """lr_t for the 1-based global step t: a linear warm-up over ``--lr-warmup`` epochs (Goyal et al.
    2017), then with ``--lr-schedule cosine`` a half cosine down to 0 at the last step (Loshchilov &
    Hutter 2017):

        lr_t = lr * min(1, t / W) * (1/2) (1 + cos(pi * min(1, t / T))),   T the run's steps,

    the cosine factor 1 with ``constant``. Resuming with more --epochs stretches the cosine."""
    rate = config.learning_rate
    warmup = config.lr_warmup * steps_per_epoch
    if warmup:
        rate *= min(1.0, step / warmup)
    if config.lr_schedule == "cosine":
        rate *= 0.5 * (1 + math.cos(math.pi * min(1.0, step / (config.epochs * steps_per_epoch))))
    return rate


def make_optimizer(config: Config, parameters: list[torch.Tensor]) -> torch.optim.Optimizer:
    """torch's Adam with its fused kernel, or Adamax (Kingma & Ba 2015, sec. 7.1: the infinity norm
    in place of the second moment; NVAE trains with it) with its multi-tensor one (it has no fused).

    Fused, Adam's update of the 2.2 million weights of a three-group model took 2.74 ms against 14.67
    for the foreach kernel and 10.41 for one tensor at a time, on the 2-core AMD EPYC
    (bench/optimizer_kernels.py, 2026-12-08); the update is elementwise, the same function whatever
    the kernel. A checkpoint's optimizer state carries its kernel: a run saved with foreach resumes
    with foreach, draw for draw."""
    if config.optimizer == "adamax":
        return torch.optim.Adamax(parameters, lr=config.learning_rate, foreach=True)
    return torch.optim.Adam(parameters, lr=config.learning_rate, fused=True)


def clipped(parameters: list[torch.Tensor], max_norm: float | None) -> bool:
    """Clip the gradients' global norm to ``max_norm`` (VDVAE clips at 200); False, and nothing to
    step, where that norm is not finite (a NaN or an overflow in one batch: VDVAE skips such updates
    rather than spread them through the weights). True with no clip."""
    if max_norm is None:
        return True
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    return bool(torch.isfinite(norm))


class WeightAverage:
    """theta_ema <- d theta_ema + (1 - d) theta after every update (``--ema d``; VDVAE uses 0.9999 at
    batch 32, NVAE 0.9999 with BN statistics): the average of the last ~1/(1-d) steps' weights, which
    evaluation, sampling and the figures use in place of the last step's."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.names = [name for name, _ in module.named_parameters()]
        self.parameters = [parameter for _, parameter in module.named_parameters()]
        self.average = [parameter.detach().clone() for parameter in self.parameters]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.average, [parameter.detach() for parameter in self.parameters], 1 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.average))

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for average, name in zip(self.average, self.names):
            average.copy_(state[name])

    @contextlib.contextmanager
    def applied(self):
        """Within, the module's parameters hold the averages; the training weights come back after."""
        with torch.no_grad():
            trained = [parameter.detach().clone() for parameter in self.parameters]
            torch._foreach_copy_(self.parameters, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.parameters, trained)


def averaged_weights(state: dict) -> dict:
    """A checkpoint's weights as evaluation uses them: its ``model`` with the averaged parameters of
    ``ema`` in place, where the run kept an average."""
    return {**state.get("model", {}), **state.get("ema", {})}
