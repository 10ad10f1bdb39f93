"""Stochastic variational inference: one epoch of SVI steps, and the test ELBO.

Pyro's losses are the *negative* ELBO summed over the batch; everything here reports the ELBO itself
in nats per image (negative numbers, higher is better). What the loss is, and its weight at each
global step, comes from ``objectives.py``.

Two ways to take a step, the same mathematics (``Config.fast``):

- fast (default): Pyro's ELBO computes the loss and its gradients (``loss_and_grads``); one
  ``torch.optim.Adam`` over all the networks' parameters, its fused kernel (practice.py), steps
  them; Pyro's argument validation is off inside the training loop.
- classic: ``pyro.infer.SVI`` with ``pyro.optim.Adam``, which captures the parameters in a trace and
  keeps one torch Adam per parameter tensor, with validation on. Adam is elementwise, so both update
  the weights alike (tests/test_reliability.py trains both); the classic step spends its extra time
  in Python (bench/throughput.py).
"""

from __future__ import annotations

import contextlib
import math

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import SVI
from pyro.optim import Adam

from .config import Config
from .data import ImageData, Split, batches
from .distributed import SINGLE, World, stream_seed, sum_gradients
from .model import VAE
from .objectives import Objective, make_objective, test_elbo_estimator
from .practice import WeightAverage, clipped, learning_rate, make_optimizer

EVAL_BATCH_SIZE = 1000


class ClassicSVI(SVI):
    """``pyro.infer.SVI`` with ``pyro.optim.Adam`` (or ``Adamax``), and the optimizer state under torch's
    names. Every objective goes through SVI's own loss (the ELBOs, IWAE, the semi-supervised loss, a
    completion run's baseline epochs): SVI calls ``loss_and_grads(model, guide, *args)``, which knows
    no step, so the step the schedule reads (the KL weight, the baseline's epochs, the learning rate)
    is held here. Its step is SVI's, with practice.py's clip and average between the gradients and
    the update."""

    def __init__(self, vae: VAE, config: Config, objective: Objective, world: World = SINGLE, steps_per_epoch: int = 1):
        self.objective, self.current_step, self.config, self.steps_per_epoch = objective, 1, config, steps_per_epoch
        optim = (pyro.optim.Adamax if config.optimizer == "adamax" else Adam)(self._learning_rate)
        super().__init__(vae.model, vae.guide, optim, loss=self._loss, loss_and_grads=self._loss_and_grads)
        self.parameters = list(vae.parameters())
        self.average = WeightAverage(vae, config.ema) if config.ema is not None else None
        self.skipped = 0
        if world.distributed:  # between SVI's backward pass and its optimizer step
            parameters, own_step = self.parameters, self.loss_and_grads

            def summed_loss_and_grads(*args, **kwargs):
                return sum_gradients(parameters, own_step(*args, **kwargs), world)

            self.loss_and_grads = summed_loss_and_grads

    def _learning_rate(self, module_name: str, parameter_name: str) -> dict:
        """pyro.optim's per-parameter arguments, read when a parameter's optimizer is made."""
        return {"lr": learning_rate(self.config, self.current_step, self.steps_per_epoch)}

    def _loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        return self.objective.loss_and_grads(model, guide, self.current_step, *args)

    def _loss(self, model, guide, *args, **kwargs) -> float:
        return self.objective.loss.loss(model, guide, *args, kl_scale=self.objective.kl_scale(self.current_step))

    def step(self, step: int, *args) -> float:
        """SVI.step: the loss and gradients with the parameters captured, the update, the gradients
        zeroed; an update whose clipped gradient norm is not finite is skipped."""
        self.current_step = step
        with poutine.trace(param_only=True) as param_capture:
            loss = self.loss_and_grads(self.model, self.guide, *args)
        captured = {site["value"].unconstrained() for site in param_capture.trace.nodes.values()}
        if clipped(self.parameters, self.config.grad_clip):
            rate = learning_rate(self.config, step, self.steps_per_epoch)
            for optimizer in self.optim.optim_objs.values():
                for group in optimizer.param_groups:
                    group["lr"] = rate
            self.optim(captured)
            if self.average is not None:
                self.average.update()
        else:
            self.skipped += 1
        pyro.infer.util.zero_grads(captured)
        return loss

    def state_dict(self) -> dict:
        return self.optim.get_state()

    def load_state_dict(self, state: dict) -> None:
        self.optim.set_state(state)

    def hot_path(self):
        return contextlib.nullcontext()


class FastSVI:
    """SVI's step without its per-step parameter capture: the parameters are known up front (the
    networks' and the pieces'), so Pyro's ELBO computes loss and gradients and one fused Adam (or
    Adamax) steps them all, at the learning rate, clip and average of practice.py."""

    def __init__(self, vae: VAE, config: Config, objective: Objective, world: World = SINGLE, steps_per_epoch: int = 1):
        self.model, self.guide = vae.model, vae.guide
        self.objective, self.world, self.config, self.steps_per_epoch = objective, world, config, steps_per_epoch
        self.parameters = list(vae.parameters())
        self.optim = make_optimizer(config, self.parameters)
        self.average = WeightAverage(vae, config.ema) if config.ema is not None else None
        self.skipped = 0

    def step(self, step: int, *args) -> float:
        """One update on the loss of this process's images; with several processes, on the
        gradients summed over them (distributed.py), and the summed loss is returned. With --grad-clip
        an update whose gradient norm is not finite is skipped (counted in ``skipped``)."""
        loss = self.objective.loss_and_grads(self.model, self.guide, step, *args)
        if self.world.distributed:
            loss = sum_gradients(self.parameters, loss, self.world)
        if clipped(self.parameters, self.config.grad_clip):
            for group in self.optim.param_groups:
                group["lr"] = learning_rate(self.config, step, self.steps_per_epoch)
            self.optim.step()
            if self.average is not None:
                self.average.update()
        else:
            self.skipped += 1
        self.optim.zero_grad(set_to_none=True)
        return loss

    def state_dict(self) -> dict:
        return self.optim.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state)

    def hot_path(self):
        """Validation checks every distribution's arguments each step; a diverged network is still
        caught, by its non-finite loss."""
        return pyro.validation_enabled(False)


def make_svi(vae: VAE, config: Config, train_images: int, labeled: Split | None = None,
             world: World = SINGLE) -> FastSVI | ClassicSVI:  # fmt: skip
    """The step ``config`` asks for; ``train_images`` sets the steps per epoch of a KL warm-up, and
    a semi-supervised run takes its labeled batches from ``labeled``."""
    steps_per_epoch = math.ceil(train_images / config.batch_size)
    # the semi-supervised model's classifier, the completion model's baseline
    classify, task = getattr(vae, "classify", None), getattr(vae, "task", None)
    objective = make_objective(config, steps_per_epoch, labeled=labeled, classify=classify, baseline=task,
                               shards=world.size)  # fmt: skip
    return (FastSVI if config.fast else ClassicSVI)(vae, config, objective, world, steps_per_epoch)


def labels_for(vae: VAE, labels: torch.Tensor) -> torch.Tensor | None:
    """The one-hot labels the model is given: all for the conditional VAE, none for the plain VAE
    and for the semi-supervised one, whose training split is its unlabeled images."""
    return vae.one_hot(labels) if vae.reads_labels else None


class NonFiniteLoss(ArithmeticError):
    def __init__(self, value: float, step: int):
        super().__init__(f"loss {value} at step {step}")
        self.value, self.step = value, step


def train_epoch(svi, vae: VAE, data: ImageData, steps_done: int = 0, on_step=None, epoch: int = 1,
                world: World = SINGLE):  # fmt: skip
    """One pass over the training split in shuffled index batches, each gathered and made float
    (and, for a Bernoulli likelihood, freshly binarized) on the device; ``steps_done`` is the global
    step count before it (the objective's schedule reads the global step). With several processes
    each takes its shard of every batch of a permutation they all draw alike (``epoch_order``).

    Returns (mean ELBO per image over the updates taken, steps); stops at the first NaN or infinite
    loss, since every step after it would only spread the NaN through the weights, unless --grad-clip
    skips such updates (then only an epoch with none taken stops)."""
    config, train = vae.config, data.train
    condition = labels_for(vae, train.labels)
    total_loss, scored = 0.0, 0
    order = epoch_order(len(train), config.batch_size, train.labels.device, epoch, config.seed, world)
    with svi.hot_path():
        for step, index in enumerate(order):
            mine = world.shard(index)
            x = data.train_batch(mine)
            y = None if condition is None else condition[mine].to(x.device)
            loss = _step(svi, steps_done + step + 1, x, y)
            if not math.isfinite(loss):
                if config.grad_clip is None:
                    raise NonFiniteLoss(loss, step + 1)
                continue  # with --grad-clip the update was skipped (practice.clipped)
            total_loss, scored = total_loss + loss, scored + len(index)
            if on_step is not None:
                on_step(step + 1, len(order), -loss / index.shape[0])
    if not scored:
        raise NonFiniteLoss(float("nan"), len(order))
    return -total_loss / scored, len(order)


def epoch_order(images: int, batch_size: int, device: torch.device, epoch: int, seed: int, world: World = SINGLE):
    """The epoch's batches of indices. One process draws the permutation from the global generator
    (the stream every single-process run so far was trained with); several processes draw it alike
    from a generator keyed by (seed, epoch), as torch's DistributedSampler does, and leave out a last
    batch too small to give each process an image."""
    if not world.distributed:
        return batches(images, batch_size, device, shuffle=True)
    generator = torch.Generator().manual_seed(stream_seed(seed, "epoch", epoch))
    order = torch.randperm(images, generator=generator).to(device).split(batch_size)
    return [index for index in order if len(index) >= world.size]


def _step(svi, step: int, x, y) -> float:
    try:
        return svi.step(step, x, y)
    except ValueError as error:
        # With validation on, Pyro sees a diverged network first, as a distribution parameter
        # (z_scale, logits) that is NaN, infinite or out of its support.
        if "invalid values" not in str(error):
            raise
        svi.skipped += 1  # no update was made (with --grad-clip the epoch goes on)
        return float("nan")


@torch.no_grad()
def evaluate_elbo(vae: VAE, split: Split, elbo=None, world: World = SINGLE) -> float:
    """The ELBO estimate (one z per image) averaged over a split, nats per image; with several
    processes each scores its shard and the sums are all-reduced."""
    elbo = elbo or test_elbo_estimator(vae.config)
    total_loss = 0.0
    for x, labels in world.part(split).chunks(EVAL_BATCH_SIZE):
        y = labels_for(vae, labels.to(x.device))
        total_loss += elbo.loss(vae.model, vae.guide, x, y)
    return -world.sum(total_loss) / len(split)


@torch.no_grad()
def classification_accuracy(vae: VAE, split: Split, world: World = SINGLE) -> float:
    """The share of ``split`` whose label is argmax_y q(y | x), the semi-supervised classifier."""
    correct = 0
    for x, labels in world.part(split).chunks(EVAL_BATCH_SIZE):
        predicted = vae.classify(x).logits.argmax(-1)
        correct += (predicted == labels.to(x.device)).sum().item()
    return world.sum(correct) / len(split)



def seed_everything(seed: int) -> None:
    """Seeds Python's, NumPy's and torch's (CPU and CUDA) generators through Pyro."""
    pyro.set_rng_seed(seed)
