"""Image completion (Sohn, Lee & Yan 2015; Pyro's examples/cvae): a conditional VAE for
p(x_hidden | x_visible), a digit drawn whole from 1, 2 or 3 of its quadrants.

Quadrants as in the paper and Pyro's example: 1 visible is the bottom-left, 2 the left half, 3 all
but the bottom-right. With m the visible mask and 1 - m the hidden one:

    baseline (deterministic):   s = sigmoid(f(m * x)),
        -log p_b(x_hidden | x_visible) = -sum_{i hidden} [x_i log s_i + (1 - x_i) log(1 - s_i)]
    the networks' condition:     c = m * x + (1 - m) * s   (the baseline's guess fills the hidden part)
    prior network:               z ~ p(z | c) = N(mu_p(c), diag sigma_p(c)^2)     (priors.ConditionalPrior)
    generation network:          x_i ~ Bernoulli(sigmoid(g_i(z, c)))  for hidden i only (a mask)
    recognition network:         q(z | x, c) = N(mu(x, c), diag sigma(x, c)^2)

The baseline is trained first, alone (``--baseline-epochs``), then frozen: its guess is the prior
network's starting point, as in the paper and in Pyro's example. Only the hidden pixels are scored:
the likelihood is masked, so visible pixels add exactly nothing to log p.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .data import Split
from .distributed import SINGLE, World
from .errors import PyroVAEError
from .likelihoods import pixel_mean, softplus
from .networks import ConditionedMLP
from .rng import draw

QUADRANTS_SEEN = {1: ("bottom-left",), 2: ("top-left", "bottom-left"), 3: ("top-left", "top-right", "bottom-left")}


def visible_mask(visible_quadrants: int, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """(C*H*W,) bool, True where a pixel is visible: the quadrants ``QUADRANTS_SEEN`` names, in
    every channel. An odd side puts its middle row or column in the bottom or right half."""
    channels, height, width = image_shape
    mask = torch.zeros((channels, height, width), dtype=torch.bool)
    rows = {"top": slice(0, height // 2), "bottom": slice(height // 2, height)}
    columns = {"left": slice(0, width // 2), "right": slice(width // 2, width)}
    for quadrant in QUADRANTS_SEEN[visible_quadrants]:
        row, column = quadrant.split("-")
        mask[:, rows[row], columns[column]] = True
    return mask.reshape(-1)


class Completion(nn.Module):
    """The visible mask and the deterministic baseline network f, the same MLP shape as the encoder."""

    def __init__(self, visible_quadrants: int, image_shape: tuple[int, int, int], hidden_dims: tuple[int, ...],
                 activation: str):  # fmt: skip
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.register_buffer("visible", visible_mask(visible_quadrants, image_shape).float(), persistent=False)
        pixels = math.prod(image_shape)
        self.baseline = ConditionedMLP(pixels, hidden_dims, pixels, activation=activation)

    @property
    def hidden(self) -> torch.Tensor:
        return 1 - self.visible

    def baseline_logits(self, x: torch.Tensor) -> torch.Tensor:
        """f(m * x): the baseline sees the visible pixels only (the hidden ones are zeroed, and the
        mask is the same for every image, so a zero carries no information)."""
        return self.baseline(x * self.visible)

    def baseline_nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p_b(x_hidden | x_visible) per image, the masked Bernoulli negative log-likelihood:
        sum over hidden i of log(1 + e^l_i) - x_i l_i."""
        logits = self.baseline_logits(x)
        return ((softplus(logits) - x * logits) * self.hidden).sum(-1)

    def condition(self, x: torch.Tensor) -> torch.Tensor:
        """c = m * x + (1 - m) * sigmoid(f(m * x)), the baseline held fixed (no gradient reaches it
        from the CVAE's loss)."""
        with torch.no_grad():
            guess = torch.sigmoid(self.baseline_logits(x))
        return x * self.visible + guess * self.hidden


@torch.no_grad()
def mean_baseline_nll(vae, split: Split, batch_size: int = 1000, world: World = SINGLE) -> float:
    """The baseline's -log p(x_hidden | x_visible), averaged over ``split``, nats per image; with
    several processes each scores its part and the sums are all-reduced."""
    completion = completion_of(vae)
    total = 0.0
    for x, _ in world.part(split).chunks(batch_size):
        total += completion.baseline_nll(x).sum().item()
    return world.sum(total) / len(split)


def grey_target_losses(vae, grey: Split, particles: int = 10, batch_size: int = 1000) -> tuple[float, float]:
    """Pyro's tutorial's figures (examples/cvae), nats per image on grey (not binarized) images:
    the CVAE's loss under ``Trace_ELBO(num_particles=10)`` with the recognition network, and the
    baseline's masked cross-entropy, both over the hidden pixels, whose grey values are the targets:

        -ELBO(x) = -E_q(z|x,c)[sum_{i hidden} x_i log s_i + (1 - x_i) log(1 - s_i) + log p(z|c) - log q(z|x,c)]

    Bernoulli's support is {0, 1}, so validation is off for these grey targets (as in the tutorial)."""
    import pyro
    from pyro.infer import Trace_ELBO

    completion = completion_of(vae)
    elbo = Trace_ELBO(num_particles=particles)
    cvae, baseline = 0.0, 0.0
    with torch.no_grad(), pyro.validation_enabled(False):
        for x, _ in grey.chunks(batch_size):
            cvae += elbo.loss(vae.model, vae.guide, x)
            baseline += completion.baseline_nll(x).sum().item()
    return cvae / len(grey), baseline / len(grey)


def completion_of(vae) -> Completion:
    if not vae.completion:
        raise PyroVAEError(
            "this run is not an image-completion model; train one with pyro-vae train --visible-quadrants N"
        )
    return vae.completion[0]


@torch.no_grad()
def complete(vae, x: torch.Tensor, draws: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """For images x (n, C*H*W): the visible input (hidden pixels grey), the baseline's prediction and
    ``draws`` CVAE completions per image, z ~ p(z | c) decoded to its mean, each (n, ..., C, H, W) in
    [0, 1] with the visible pixels as given. The z are drawn from the CPU ``generator``."""
    completion = completion_of(vae)
    visible, hidden = completion.visible, completion.hidden
    condition = completion.condition(x)
    prior = vae.prior((draws, x.shape[0]), condition)
    z = draw(prior, generator)
    means = pixel_mean(vae.decoder(z, condition), vae.config)  # (draws, n, C*H*W)
    pasted = x * visible + means * hidden
    baseline = x * visible + torch.sigmoid(completion.baseline_logits(x)) * hidden

    def images(values):
        return values.reshape(*values.shape[:-1], *completion.image_shape).float().cpu()

    return {
        "input": images(x * visible + 0.5 * hidden),
        "truth": images(x),
        "baseline": images(baseline),
        "cvae": images(pasted.transpose(0, 1)),  # (n, draws, C, H, W)
    }


def completion_rows(completed: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """One row per image: input, truth, baseline, then the CVAE's draws. Returns the images
    (n * columns, C, H, W) row-major, the columns and the rows."""
    n = completed["input"].shape[0]
    columns = [completed["input"], completed["truth"], completed["baseline"]]
    stacked = torch.cat([torch.stack(columns, dim=1), completed["cvae"]], dim=1)
    return stacked.reshape(-1, *stacked.shape[2:]), 3 + completed["cvae"].shape[1], n

