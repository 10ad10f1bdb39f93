"""Amortized posteriors q(z | x): small modules that turn the encoder's output into a Pyro
distribution over z with one event dimension, and the closed-form KL where one exists.

The encoder outputs ``encoder_outputs()`` numbers per image; the posterior piece builds q from them.
The guide, the evaluator and the figures ask the VAE for q (``VAE.posterior``); nothing else knows
its family.
"""

from __future__ import annotations

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from torch import nn



class DiagonalGaussian(nn.Module):
    """q(z | x) = N(z; mu(x), diag sigma(x)^2), the encoder giving (mu, log sigma); drawn by
    reparametrization, z = mu + sigma * eps with eps ~ N(0, I), so gradients flow through z into the
    encoder (Kingma & Welling 2013)."""

    def __init__(self, z_dim: int):
        super().__init__()
        self.z_dim = z_dim

    def encoder_outputs(self) -> int:
        return 2 * self.z_dim

    def forward(self, encoded: torch.Tensor) -> dist.Distribution:
        z_loc, z_log_scale = encoded.split([self.z_dim, self.z_dim], dim=-1)
        return dist.Normal(z_loc, z_log_scale.exp()).to_event(1)


class InverseAutoregressiveFlow(nn.Module):
    """q(z | x) by an inverse autoregressive flow (Kingma et al. 2016): a Gaussian draw pushed through
    T affine autoregressive maps, each conditioned on a context h(x) that the encoder also outputs,

        z_0 = mu(x) + sigma(x) * eps,    z_t = m_t(z_{t-1}, h) + s_t(z_{t-1}, h) * z_{t-1},
        log q(z_T | x) = log N(z_0; mu, diag sigma^2) - sum_t sum_j log s_t,j(z_{t-1}, h),

    with m_t, s_t from a masked (MADE) network, so that dimension j depends only on dimensions < j and
    the Jacobian is triangular; the order is reversed between maps. Pyro's
    ``conditional_affine_autoregressive`` and ``TransformedDistribution`` compute the draw and the
    log-determinant; a draw's density is read from the transforms' cache, never by inverting them."""

    def __init__(self, z_dim: int, flows: int, context_dim: int, hidden: int):
        super().__init__()
        self.z_dim, self.context_dim = z_dim, context_dim
        # Pyro builds the MADE masks with Tensor.item(), which torch's meta device (models.parameter_count)
        # cannot answer; the flows are z-sized, so they are made on the CPU and move with the model.
        with torch.device("cpu"):
            self.flows = nn.ModuleList(
                T.conditional_affine_autoregressive(z_dim, context_dim, hidden_dims=[hidden, hidden])
                for _ in range(flows)
            )
        self.register_buffer("reverse", torch.arange(z_dim - 1, -1, -1), persistent=False)

    def encoder_outputs(self) -> int:
        return 2 * self.z_dim + self.context_dim

    def forward(self, encoded: torch.Tensor) -> dist.Distribution:
        z_loc, z_log_scale, context = encoded.split([self.z_dim, self.z_dim, self.context_dim], dim=-1)
        transforms = []
        for index, flow in enumerate(self.flows):
            if index > 0:
                transforms.append(T.Permute(self.reverse))
            transforms.append(flow.condition(context))
        base = dist.Normal(z_loc, z_log_scale.exp()).to_event(1)
        return dist.TransformedDistribution(base, transforms)


def posterior_for(config, z_dim: int) -> nn.Module:
    """The posterior piece ``config.posterior`` names, over the top latent of ``z_dim`` dimensions."""
    if config.posterior == "iaf":
        return InverseAutoregressiveFlow(z_dim, config.flows, 2 * z_dim, 4 * z_dim)
    return DiagonalGaussian(z_dim)


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
