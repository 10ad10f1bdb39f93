"""Amortized posteriors q(z | x): small modules that turn the encoder's output into a Pyro
distribution over z with one event dimension, and the closed-form KL where one exists.

The encoder outputs (z_loc, z_scale) for each image; a posterior piece builds q from them. The guide,
the evaluator and the figures ask the VAE for q (``VAE.posterior``); nothing else knows its family.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn


class DiagonalGaussian(nn.Module):
    """q(z | x) = N(z; mu(x), diag sigma(x)^2), drawn by reparametrization: z = mu + sigma * eps,
    eps ~ N(0, I), so gradients flow through z into the encoder (Kingma & Welling 2013)."""

    def forward(self, z_loc: torch.Tensor, z_scale: torch.Tensor) -> dist.Distribution:
        return dist.Normal(z_loc, z_scale).to_event(1)


POSTERIORS = {"gaussian": DiagonalGaussian}


def gaussian_kl(z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per data point, summed over the last dimension:

        KL = -1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
    """
    return -0.5 * (1 + 2 * z_scale.log() - z_loc.pow(2) - z_scale.pow(2)).sum(-1)


def diagonal_gaussian_kl(q_loc, q_scale, p_loc, p_scale) -> torch.Tensor:
    """KL(N(m_q, diag s_q^2) || N(m_p, diag s_p^2)), summed over the last dimension:

        KL = sum_j log(s_p,j / s_q,j) + (s_q,j^2 + (m_q,j - m_p,j)^2) / (2 s_p,j^2) - 1/2

    With m_p = 0 and s_p = 1 it is ``gaussian_kl``."""
    variance_ratio = (q_scale / p_scale).pow(2)
    return 0.5 * (variance_ratio + ((q_loc - p_loc) / p_scale).pow(2) - 1 - variance_ratio.log()).sum(-1)


def closed_form_kl(posterior: dist.Distribution, prior: dist.Distribution) -> torch.Tensor | None:
    """KL(q || p) per data point, written by hand, when both are diagonal Gaussians (the standard
    normal prior goes through ``gaussian_kl``, the formula the README quotes); None when no closed
    form applies (a mixture prior, a flow posterior): then the KL is estimated by Monte Carlo."""
    q, p = _diagonal_normal(posterior), _diagonal_normal(prior)
    if q is None or p is None:
        return None
    if bool((p.loc == 0).all()) and bool((p.scale == 1).all()):
        return gaussian_kl(q.loc, q.scale)
    return diagonal_gaussian_kl(q.loc, q.scale, p.loc, p.scale)


def _diagonal_normal(distribution) -> dist.Normal | None:
    if isinstance(distribution, dist.Independent) and distribution.reinterpreted_batch_ndims == 1:
        if type(distribution.base_dist) is dist.Normal:
            return distribution.base_dist
    return None
