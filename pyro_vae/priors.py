"""Priors p(z): small modules that return a Pyro distribution over z with one event dimension.

A prior is called with the batch shape it must cover (for example ``(n,)``, or ``(k, n)`` under a
particle plate), the VAE's ``encode`` (x -> q(z|x), which the VampPrior uses) and the condition the
networks see (which the image-completion prior reads; the others ignore it) and returns a
distribution whose ``batch_shape`` is that shape and whose ``event_shape`` is ``(z_dim,)``. The model, the evaluator, sampling and the figures all ask the VAE
for it (``VAE.prior``); nothing else knows which prior a run has.
"""

from __future__ import annotations

import contextlib
import math

import pyro.distributions as dist
import torch
from torch import nn

from .errors import PyroVAEError
from .networks import image_network


class StandardNormal(nn.Module):
    """p(z) = N(z; 0, I) = prod_j (2 pi)^(-1/2) exp(-z_j^2 / 2), the prior of Kingma & Welling (2013)."""

    def __init__(self, z_dim: int, scale: float = 1.0):
        super().__init__()
        self.z_dim = z_dim
        # not in the state dict: it only carries the device and dtype (and a scale for experiments)
        self.register_buffer("scale", torch.tensor(float(scale)), persistent=False)

    def forward(self, batch_shape: tuple[int, ...], encode=None, condition=None) -> dist.Distribution:
        scale = self.scale.expand(*batch_shape, self.z_dim)
        return dist.Normal(torch.zeros_like(scale), scale).to_event(1)


class GaussianMixture(nn.Module):
    """p(z) = sum_c pi_c N(z; m_c, diag s_c^2): a fixed mixture, for experiments and tests."""

    def __init__(self, weights, locs, scales):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(weights, dtype=torch.float32).log(), persistent=False)
        self.register_buffer("locs", torch.as_tensor(locs, dtype=torch.float32), persistent=False)
        self.register_buffer("scales", torch.as_tensor(scales, dtype=torch.float32), persistent=False)

    def forward(self, batch_shape: tuple[int, ...], encode=None, condition=None) -> dist.Distribution:
        components = dist.Normal(self.locs, self.scales).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components).expand(batch_shape)




class DiagonalGaussianMixture(dist.TorchDistribution):
    """p(z) = (1/K) sum_k N(z; m_k, diag s_k^2), the same K components for every batch element.

    log N(z; m, s^2) = -1/2 sum_j (z_j - m_j)^2 / s_j^2 - sum_j log s_j - D/2 log 2 pi, and the
    square expands into z^2 . (1/s^2) - 2 z . (m/s^2) + m^2 . (1/s^2): two (rows, D) x (D, K)
    matrix products instead of a (rows, K, D) tensor, which for K = 500 pseudo-inputs would be 500
    times the size of z."""

    arg_constraints = {}
    support = dist.constraints.real_vector
    has_rsample = False

    def __init__(self, locs: torch.Tensor, scales: torch.Tensor, batch_shape=torch.Size(), validate_args=None,
                 members: torch.Tensor | None = None):  # fmt: skip
        self.locs, self.scales = locs, scales
        self.members = members  # (..., K) bool: the components each element mixes over (None: all)
        super().__init__(torch.Size(batch_shape), locs.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return DiagonalGaussianMixture(self.locs, self.scales, batch_shape, members=self.members)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        precision = self.scales.pow(-2)  # (K, D)
        quadratic = value.pow(2) @ precision.T - 2 * value @ (self.locs * precision).T
        quadratic = quadratic + (self.locs.pow(2) * precision).sum(-1)  # (..., K)
        log_normalizer = self.scales.log().sum(-1) + 0.5 * self.locs.shape[-1] * math.log(2 * math.pi)
        components = -0.5 * quadratic - log_normalizer
        if self.members is None:
            return torch.logsumexp(components, dim=-1) - math.log(self.locs.shape[0])
        mixed = torch.logsumexp(components.masked_fill(~self.members, -math.inf), dim=-1)
        return mixed - self.members.sum(-1).log()

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            if self.members is None:
                index = torch.randint(self.locs.shape[0], shape, device=self.locs.device)
            else:  # uniformly among each element's own components
                weights = self.members.expand(*shape, self.locs.shape[0]).float()
                index = torch.multinomial(weights.reshape(-1, weights.shape[-1]), 1).reshape(shape)
            noise = torch.randn(shape + self.event_shape, device=self.locs.device)
            return self.locs[index] + self.scales[index] * noise


class VampPrior(nn.Module):
    """The VampPrior (Tomczak & Welling 2018): the aggregate posterior of K learned pseudo-inputs,

        p(z) = (1/K) sum_k q(z | u_k),   u_k in [0, 1]^(C*H*W) (a hard tanh of free parameters),

    with q the VAE's own encoder, so prior and posterior learn together. With a flow posterior the
    components are its Gaussian base q_0(z | u_k) (a mixture of flows has no batched density).

    Conditional (``classes`` > 0): each pseudo-input carries a class, c_k = k mod classes, and is
    encoded with it, and the prior of an image of class y mixes its class's pseudo-inputs alone,

        p(z | y) = (1 / K_y) sum_{k: c_k = y} q(z | u_k, y),

    so that sum_y p(y) p(z | y) with balanced classes is the mixture of all K; asked with no label
    (a figure's shared z), it is that mixture."""

    def __init__(self, pseudo_inputs: int, x_dim: int, classes: int = 0):
        super().__init__()
        # Tomczak & Welling initialize near the data mean with small noise
        self.pseudo_inputs = nn.Parameter(0.05 + 0.01 * torch.randn(pseudo_inputs, x_dim))
        self.classes = classes
        if classes:
            self.register_buffer("component_classes", torch.arange(pseudo_inputs) % classes, persistent=False)
        self._held = None

    def forward(self, batch_shape: tuple[int, ...], encode=None, condition=None) -> dist.Distribution:
        """``encode(x, classes)`` -> q(z | x[, the one-hot of classes]); ``condition`` the images' own
        (``label_scale`` times the one-hot label), whose argmax is their class."""
        locs, scales = self._held if self._held is not None else self._components(encode)
        members = None
        if self.classes and condition is not None:
            members = condition.argmax(-1)[..., None] == self.component_classes  # (..., K)
            batch_shape = torch.broadcast_shapes(tuple(batch_shape), members.shape[:-1])
        return DiagonalGaussianMixture(locs, scales, batch_shape, members=members)

    def _components(self, encode) -> tuple[torch.Tensor, torch.Tensor]:
        classes = self.component_classes if self.classes else None
        components = encode(nn.functional.hardtanh(self.pseudo_inputs, 0.0, 1.0), classes)
        base = components.base_dist if isinstance(components, dist.TransformedDistribution) else components
        normal = base.base_dist  # Independent(Normal) -> Normal, batch (K,)
        return normal.loc, normal.scale

    @contextlib.contextmanager
    def held(self, encode):
        """Within, the mixture is encoded once and reused (evaluation, where no weight changes):
        otherwise every chunk of draws would run the encoder over all K pseudo-inputs again, for a
        conv encoder and 256-row chunks three times the decoder's own work."""
        with torch.no_grad():
            self._held = self._components(encode)
        try:
            yield
        finally:
            self._held = None


class ConditionalPrior(nn.Module):
    """The prior network of a conditional model whose condition is an image (Sohn et al. 2015):

        p(z | c) = N(z; mu_p(c), diag sigma_p(c)^2),
        sigma_p(c) = MIN_SCALE + softplus(s(c)),   (mu_p, s) from a network of c (the encoder's kind),

    with c the visible pixels and the baseline's guess for the hidden ones (completion.py). Unlike
    N(0, I) it tells the decoder which completions the visible part allows.

    The floor MIN_SCALE: without it the network learned, for a visible part unlike any in training,
    scales of 0.05 around a mean far from where the recognition network put z, and that one test
    image's KL was 81,715 nats (-8 nats on the mean over the test set; the test ELBO jumped between
    -47 and -157 from epoch to epoch). z's unit is the networks' own choice (the decoder can scale
    it), so a floor on sigma_p costs no expressiveness; it bounds how sure the prior may be."""

    MIN_SCALE = 0.5

    def __init__(self, config, z_dim: int):
        super().__init__()
        self.z_dim = z_dim
        self.net = image_network(config, 2 * z_dim)

    def forward(self, batch_shape: tuple[int, ...], encode=None, condition=None) -> dist.Distribution:
        if condition is None:
            raise PyroVAEError("this model's prior p(z | x_visible) needs the visible pixels; use pyro-vae complete")
        z_loc, z_scale_input = self.net(condition).split([self.z_dim, self.z_dim], dim=-1)
        z_scale = self.MIN_SCALE + nn.functional.softplus(z_scale_input)
        shape = torch.broadcast_shapes(tuple(batch_shape), z_loc.shape[:-1]) + (self.z_dim,)
        return dist.Normal(z_loc.expand(shape), z_scale.expand(shape)).to_event(1)


def prior_for(config, z_dim: int) -> nn.Module:
    """The prior piece ``config.prior`` names, over the top latent of ``z_dim`` dimensions (the
    completion CVAE has its own, ``ConditionalPrior``)."""
    if config.prior == "vamp":
        return VampPrior(config.pseudo_inputs, config.pixels, config.num_classes if config.conditional else 0)
    return StandardNormal(z_dim)
