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

from .errors import PyroVAEError
from .networks import ConditionedMLP


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


class ConditionalGaussian(nn.Module):
    """N(z_out; m(z_in[, c]), diag s(z_in[, c])^2) with (m, log s) from a small ELU network: the upward
    q(z2 | z1, y) of the guide and the downward p(z1 | z2, y) of the model with two stochastic layers
    (Burda et al. 2015 use two hidden layers of 100 and 50 units). With ``condition_dim`` > 0 the
    condition enters every layer, times ``condition_scale``: a conditional model passes its networks'
    ``label_scale * y`` and 1 / label_scale here, so these small networks read the one-hot y itself.
    At the label's scale of 30 they diverged (test ELBO -16,000 to -1.7 million nats after two
    epochs of 3,000 digits, four seeds); reading y, -215 to -218, against -217 to -288 without the
    label (2 x 64 hidden units, z 8).

    log s is held within +-LOG_SCALE_LIMIT (scales from 6e-6 to 1.6e5): at initialization a
    conditional encoder puts z1 some 90 units out (the label enters it at scale 30), and unbounded
    exp(log s) then overflowed p(z1 | z2) to inf and the first step's loss to NaN. A trained model's
    scales lie far inside, where the clamp is the identity."""

    LOG_SCALE_LIMIT = 12.0

    def __init__(self, in_dim: int, hidden: int, out_dim: int, condition_dim: int = 0, condition_scale: float = 1.0):
        super().__init__()
        self.net = ConditionedMLP(in_dim, (hidden, hidden), 2 * out_dim, condition_dim=condition_dim)
        self.out_dim, self.condition_dim, self.condition_scale = out_dim, condition_dim, condition_scale

    def forward(self, z_in: torch.Tensor, condition: torch.Tensor | None = None) -> dist.Distribution:
        """``condition`` is read only by a layer built with ``condition_dim`` (else ignored: an image
        condition, say, reaches z through the prior network and the decoder instead)."""
        if self.condition_dim and condition is None:
            raise PyroVAEError("this two-layer model's layers read the label: give y")
        outputs = self.net(z_in, condition * self.condition_scale if self.condition_dim else None)
        loc, log_scale = outputs.split([self.out_dim, self.out_dim], dim=-1)
        log_scale = log_scale.clamp(-self.LOG_SCALE_LIMIT, self.LOG_SCALE_LIMIT)
        return dist.Normal(loc, log_scale.exp()).to_event(1)


def posterior_for(config) -> nn.Module:
    """The posterior piece ``config.posterior`` names."""
    if config.posterior == "iaf":
        return InverseAutoregressiveFlow(config.z_dim, config.flows, 2 * config.z_dim, 4 * config.z_dim)
    return DiagonalGaussian(config.z_dim)


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
