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

That is the paper's Bernoulli case; with any other ``--likelihood`` the baseline and the generation
network give that likelihood's parameters (its ``decoder_outputs``), the baseline's loss is that
likelihood's masked -log p_b and its guess that likelihood's mean. The recognition network and the
prior network are the run's posterior and the prior piece above; with ``--stochastic-layers 2`` the
prior network gives p(z2 | c) and z1 follows from z2 as in the VAE.

The baseline is trained first, alone (``--baseline-epochs``), then frozen: its guess is the prior
network's starting point, as in the paper and in Pyro's example. Only the hidden pixels are scored:
the likelihood is masked, so visible pixels add exactly nothing to log p.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .config import Config
from .data import Split
from .distributed import SINGLE, World
from .errors import PyroVAEError
from .likelihoods import likelihood_for
from .model import VAE
from .networks import ConditionedMLP
from .priors import ConditionalPrior
from .sampling import draw_prior

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
    """The visible mask and the deterministic baseline network f, the same MLP shape as the encoder,
    which gives the likelihood's parameters for every pixel."""

    def __init__(self, config: Config):
        super().__init__()
        self.observation = likelihood_for(config)
        self.image_shape = tuple(config.image_shape)
        self.register_buffer("visible", visible_mask(config.visible_quadrants, self.image_shape).float(),
                             persistent=False)  # fmt: skip
        pixels = math.prod(self.image_shape)
        self.baseline = ConditionedMLP(pixels, config.hidden_dims, pixels * config.decoder_outputs,
                                       activation=config.activation)  # fmt: skip

    @property
    def hidden(self) -> torch.Tensor:
        return 1 - self.visible

    def baseline_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """f(m * x): the baseline sees the visible pixels only (the hidden ones are zeroed, and the
        mask is the same for every image, so a zero carries no information)."""
        return self.baseline(x * self.visible)

    def baseline_nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p_b(x_hidden | x_visible) per image, the likelihood masked to the hidden pixels; for
        the Bernoulli, sum over hidden i of log(1 + e^l_i) - x_i l_i."""
        scored = self.observation.distribution(self.baseline_outputs(x), mask=self.hidden.bool())
        return -scored.log_prob(x)

    def baseline_guess(self, x: torch.Tensor) -> torch.Tensor:
        """The baseline's mean of every pixel, sigmoid(f(m * x)) for the Bernoulli."""
        return self.observation.mean(self.baseline_outputs(x))

    def condition(self, x: torch.Tensor) -> torch.Tensor:
        """c = m * x + (1 - m) * E_b[x | m * x], the baseline held fixed (no gradient reaches it
        from the CVAE's loss)."""
        with torch.no_grad():
            guess = self.baseline_guess(x)
        return x * self.visible + guess * self.hidden


class CompletionCVAE(VAE):
    """The completion CVAE: the VAE's networks and pieces, the condition the visible part of x with
    the baseline's guess for the rest, the prior the network p(z | c), and only hidden pixels scored:

        model:  z ~ p(z | c),  x_hidden ~ p(x_hidden | z, c)        guide:  z ~ q(z | x, c)

    It has no p(z) to draw from without an image: it completes images (``complete``), it does not
    sample them."""

    draws_from_prior = False

    def __init__(self, config: Config):
        super().__init__(config, condition_dim=config.pixels, condition_is_image=True)
        # a one-element list: the checkpoint keys (completion.0.*) of every completion run saved so far
        self.completion = nn.ModuleList([Completion(config)])

    def _prior_piece(self, config: Config, top_dim: int) -> nn.Module:
        return ConditionalPrior(config, top_dim)

    @property
    def task(self) -> Completion:
        """The visible mask and the baseline."""
        return self.completion[0]

    @property
    def reads_labels(self) -> bool:
        return False

    @property
    def scored_pixels(self) -> int:
        return int(self.task.hidden.sum().item())

    def condition(self, y: torch.Tensor | None, x: torch.Tensor | None = None) -> torch.Tensor:
        """c, from the image ``x`` (the label ``y`` plays no part)."""
        if x is None:
            raise PyroVAEError("this model's prior p(z | x_visible) needs the visible pixels; use pyro-vae complete")
        return self.task.condition(x)

    def likelihood(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> dist.Distribution:
        """p(x_hidden | z, c): the visible pixels masked out, so they add exactly nothing to log p."""
        return self.observation.distribution(self.decoder(z, condition), mask=self.task.hidden.bool())

    # A completion run's baseline is not registered by the model: it is frozen once the CVAE trains,
    # and pyro.infer.SVI would step every parameter the model registers, moving a frozen one on its
    # Adam momentum (SVI zeroes gradients rather than dropping them); its own steps register it.


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

    Bernoulli's support is {0, 1}, so validation is off for these grey targets (as in the tutorial).
    The figures are the Bernoulli model's: ``evaluate`` asks for them of a Bernoulli run only."""
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
    if not isinstance(vae, CompletionCVAE):
        raise PyroVAEError(
            "this run is not an image-completion model; train one with pyro-vae train --visible-quadrants N"
        )
    return vae.task


@torch.no_grad()
def complete(vae, x: torch.Tensor, draws: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """For images x (n, C*H*W): the visible input (hidden pixels grey), the baseline's prediction and
    ``draws`` CVAE completions per image, z ~ p(z | c) decoded to its mean, each (n, ..., C, H, W) in
    [0, 1] with the visible pixels as given. The z are drawn from the CPU ``generator`` (z ~ p(z | c),
    or in a hierarchy z_N ~ p(z_N | c), then each group below given those above)."""
    completion = completion_of(vae)
    visible, hidden = completion.visible, completion.hidden
    condition = completion.condition(x)
    z = draw_prior(vae, (draws, x.shape[0]), generator, condition)
    means = vae.observation.mean(vae.decoder(z, condition))  # (draws, n, C*H*W)
    pasted = x * visible + means * hidden
    baseline = x * visible + completion.baseline_guess(x) * hidden

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

