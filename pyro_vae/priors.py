"""Priors p(z): small modules that return a Pyro distribution over z with one event dimension.

A prior is called with the batch shape it must cover (for example ``(n,)``, or ``(k, n)`` under a
particle plate) and returns a distribution whose ``batch_shape`` is that shape and whose
``event_shape`` is ``(z_dim,)``. The model, the evaluator, sampling and the figures all ask the VAE
for it (``VAE.prior``); nothing else knows which prior a run has.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn


class StandardNormal(nn.Module):
    """p(z) = N(z; 0, I) = prod_j (2 pi)^(-1/2) exp(-z_j^2 / 2), the prior of Kingma & Welling (2013)."""

    def __init__(self, z_dim: int, scale: float = 1.0):
        super().__init__()
        self.z_dim = z_dim
        # not in the state dict: it only carries the device and dtype (and a scale for experiments)
        self.register_buffer("scale", torch.tensor(float(scale)), persistent=False)

    def forward(self, batch_shape: tuple[int, ...]) -> dist.Distribution:
        scale = self.scale.expand(*batch_shape, self.z_dim)
        return dist.Normal(torch.zeros_like(scale), scale).to_event(1)


class GaussianMixture(nn.Module):
    """p(z) = sum_c pi_c N(z; m_c, diag s_c^2): a fixed mixture, for experiments and tests."""

    def __init__(self, weights, locs, scales):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(weights, dtype=torch.float32).log(), persistent=False)
        self.register_buffer("locs", torch.as_tensor(locs, dtype=torch.float32), persistent=False)
        self.register_buffer("scales", torch.as_tensor(scales, dtype=torch.float32), persistent=False)

    def forward(self, batch_shape: tuple[int, ...]) -> dist.Distribution:
        components = dist.Normal(self.locs, self.scales).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components).expand(batch_shape)


PRIORS = {"normal": StandardNormal}
