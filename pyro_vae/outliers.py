"""Out-of-distribution scores of single images, each oriented so that higher means more out of
distribution, and the AUROC that tells two sets apart.

- ``nll`` = -log P(x), the IWAE bound's, in nats of the image as the run scores it (binarized, or 8-bit;
  a continuous likelihood through dequantization). Raw likelihood is known to fail: a model of
  Fashion-MNIST gives MNIST digits a higher likelihood than its own test images (Nalisnick et al.
  2019, "Do deep generative models know what they don't know?").
- ``complexity`` = -log P(x) - L(x) ln 2, with L(x) the bits of the image under a lossless codec
  (Serra et al. 2020, "Input complexity and out-of-distribution detection", their S(x) in nats): a
  simple image is likely under every model; what the run knows is how much better than a generic
  compressor it does.
- ``regret`` = ELBO(x; q*) - ELBO(x; q), the likelihood regret of Xiao et al. (2020): q* is the
  amortized posterior with its parameters re-fitted to the one image (free shifts of every latent
  group's location and log-scale, a few Adam steps from zero), so an image the encoder has learnt
  gains little and an outlier much. Both ELBOs are estimated with the same draws.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger

from .objectives import particle_log_weights

SCORES = ("nll", "complexity", "regret")


def complexity(nll: np.ndarray, code_bits: np.ndarray) -> np.ndarray:
    """S(x) = -log P(x) - L(x) ln 2 (nats)."""
    return nll - code_bits * math.log(2)


def auroc(inliers: np.ndarray, outliers: np.ndarray) -> float:
    """P(score of an outlier > score of an inlier) + P(equal) / 2: the area under the ROC curve of
    the threshold rule "out of distribution if the score is above t" (the Mann-Whitney statistic)."""
    inliers, outliers = np.sort(np.asarray(inliers, dtype=np.float64)), np.asarray(outliers, dtype=np.float64)
    below = np.searchsorted(inliers, outliers, side="left")
    not_above = np.searchsorted(inliers, outliers, side="right")
    return float((below + 0.5 * (not_above - below)).sum() / (len(inliers) * len(outliers)))


class PosteriorShift(Messenger):
    """Shifts the guide's latent sites: q(z_l) = N(m + s loc_shift, (s e^{log_scale_shift})^2), a flow's
    base the same way. ``shifts`` maps a site to (loc_shift, log_scale_shift), each of the site's
    value shape without the particle dimension; other sites (y in M2) pass untouched."""

    def __init__(self, shifts: dict[str, tuple[torch.Tensor, torch.Tensor]]):
        super().__init__()
        self.shifts = shifts

    def _pyro_sample(self, msg):
        if msg["name"] in self.shifts and not msg["is_observed"]:
            msg["fn"] = _shifted(msg["fn"], *self.shifts[msg["name"]])


def _shifted(distribution: dist.Distribution, loc_shift: torch.Tensor, log_scale_shift: torch.Tensor):
    if isinstance(distribution, dist.TransformedDistribution):
        return dist.TransformedDistribution(_shifted(distribution.base_dist, loc_shift, log_scale_shift),
                                            distribution.transforms)  # fmt: skip
    if isinstance(distribution, dist.Independent):
        return _shifted(distribution.base_dist, loc_shift, log_scale_shift).to_event(distribution.reinterpreted_batch_ndims)
    if isinstance(distribution, dist.Normal):  # the shift in units of the scale: one step size fits all groups
        return dist.Normal(distribution.loc + distribution.scale * loc_shift, distribution.scale * log_scale_shift.exp())
    raise TypeError(f"no posterior shift for {type(distribution).__name__}")


def latent_sites(vae) -> list[str]:
    """The guide's Gaussian latent sites, the top group first."""
    return [vae.top_site, *(group.site for group in vae.downward)]


def likelihood_regret(vae, x: torch.Tensor, y: torch.Tensor | None, steps: int = 20, learning_rate: float = 0.1,
                      particles: int = 16, step_particles: int = 1) -> torch.Tensor:  # fmt: skip
    """ELBO(x; q*) - ELBO(x; q) per image, shape (n,): the shifts of every latent site optimized by
    Adam for ``steps`` steps of a one-draw ELBO, each image on its own (the objective is a sum over
    images, and Adam's update is per element); both ELBOs averaged over the same ``particles`` draws."""
    sites = latent_sites(vae)
    with torch.no_grad():
        sizes = {name: site["value"].shape[-1] for name, site in _guide_sites(vae, x, y, sites).items()}
    shifts = {name: (x.new_zeros(x.shape[0], size, requires_grad=True), x.new_zeros(x.shape[0], size, requires_grad=True))
              for name, size in sizes.items()}  # fmt: skip
    seed = int(torch.randint(0, 2**31 - 1, ()))
    before = _elbo(vae, x, y, {}, particles, seed)
    optimizer = torch.optim.Adam([shift for pair in shifts.values() for shift in pair], lr=learning_rate)
    frozen = [parameter for parameter in vae.parameters() if parameter.requires_grad]
    try:
        for parameter in frozen:  # the networks stay as trained; only the shifts get gradients
            parameter.requires_grad_(False)
        for _ in range(steps):
            optimizer.zero_grad()
            with torch.enable_grad(), pyro.validation_enabled(False):
                log_w, _ = particle_log_weights(vae.model, PosteriorShift(shifts)(vae.guide), step_particles, x, y)
                (-log_w.mean(dim=0).sum()).backward()
            optimizer.step()
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
    return _elbo(vae, x, y, shifts, particles, seed) - before


@torch.no_grad()
def _elbo(vae, x, y, shifts, particles: int, seed: int) -> torch.Tensor:
    with pyro.validation_enabled(False), torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
        torch.manual_seed(seed)
        log_w, _ = particle_log_weights(vae.model, PosteriorShift(shifts)(vae.guide), particles, x, y)
    return log_w.mean(dim=0)


def _guide_sites(vae, x, y, sites):
    trace = pyro.poutine.trace(vae.guide).get_trace(x, y)
    return {name: trace.nodes[name] for name in sites}
