"""The VAE: three pieces as distributions, and the Pyro ``model`` and ``guide`` written from them.

Generative model, for each image n (the plate ``data``):

    z_n ~ p(z)                                        (``VAE.prior``: priors.py, site "z")
    x_n ~ p(x | z_n[, y_n])                            (``VAE.likelihood``: likelihoods.py, site "x")

Amortized guide:

    z_n ~ q(z | x_n[, y_n])                            (``VAE.posterior``: posteriors.py, site "z")

SVI maximizes the evidence lower bound, per image (objectives.py)

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x).

This class is the VAE and the conditional VAE (y given, ``--conditional``). The other tasks are their
own classes written from the same pieces: the semi-supervised M2, where y is a latent variable
(m2.py), and the image-completion CVAE, whose condition is the visible part of x (completion.py);
``models.build_model`` picks the one a configuration asks for. Evaluation, sampling and the figures
ask any of them for the same three pieces, so a new prior or posterior is written once, in its
module. Every piece broadcasts over leading dimensions, so the model and guide also run under a
particle plate (the IWAE bound) with the batch shape (particles, n).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn

from .config import Config
from .errors import PyroVAEError
from .likelihoods import likelihood_for
from .data import one_hot
from .networks import Decoder, Encoder, image_generator, image_network, last_width
from .conv_hierarchy import ConvBottomUp, SpatialDecoder, conv_top_down_groups, group_levels, group_sizes
from .hierarchy import BottomUp, top_down_groups
from .posteriors import closed_form_kl, posterior_for
from .priors import prior_for


class VAE(nn.Module):
    """Encoder and decoder networks, the prior and posterior pieces, and the Pyro ``model`` and
    ``guide`` that use them.

    ``x`` is a batch of flattened images (batch, C*H*W), the shape ``config.image_shape``; ``y`` the
    one-hot labels (batch, classes), which the conditional VAE needs and the plain VAE ignores.

    What the other parts of the toolkit ask of a model, each model class answers for itself:
    ``reads_labels`` (the training and test labels are given to it as y), ``draws_from_prior`` (z can be
    drawn with no image: samples, FID), ``scored_pixels`` (the subpixels its log-likelihood covers)."""

    draws_from_prior = True

    def __init__(self, config: Config, condition_dim: int | None = None, condition_is_image: bool = False):
        super().__init__()
        if config.pixels is None:
            raise PyroVAEError(f"the image shape of {config.dataset} is not known yet: read the data first "
                               f"(pyro_vae.data.load_data) and record it as config.image_shape")  # fmt: skip
        self.config = config
        classes = config.num_classes
        if config.conditional and not classes:
            raise PyroVAEError(f"--conditional needs a source with classes; {config.dataset} has no labels "
                               f"(a folder needs one subfolder per class, an .npz a 'labels' array)")  # fmt: skip
        if condition_dim is None:
            condition_dim = classes if config.conditional else 0
        shared = dict(
            condition_dim=condition_dim,
            # an image condition enters each network's first layer only: C*H*W more inputs per layer
            # would triple the networks for what the first layer can already pass on
            condition_every_layer=config.label_every_layer and not condition_is_image,
            condition_is_image=condition_is_image,
        )
        self.observation = likelihood_for(config)
        dims = config.group_dims
        deep, maps = len(dims) > 1, len(dims) > 1 and config.network == "conv"
        sizes = group_sizes(config) if maps else dims  # each group's flattened size
        self.latent_size = sizes[0]  # what the decoder reads: z, or z_1
        self.latent_posterior = posterior_for(config, sizes[-1])
        # N >= 2 groups: a bottom-up pass gives the features of every level and the top posterior's
        # inputs, and the groups below the top share one top-down path (hierarchy.py: fully connected
        # cells half as wide as the last hidden layer, on the encoder's features; conv_hierarchy.py:
        # maps at the conv encoder's levels). A label enters that path as it enters the encoder and
        # decoder (an image condition does not: it reaches z through the prior network and the decoder).
        width = max(1, last_width(config) // 2)
        top_outputs = self.latent_posterior.encoder_outputs()
        self.encoder = Encoder(image_network(config, width if deep and not maps else top_outputs, **shared))
        decoder = SpatialDecoder(config, config.decoder_outputs, **shared) if maps else None
        self.decoder = Decoder(decoder or image_generator(config, config.z_dim, config.decoder_outputs, **shared))
        self.latent_prior = self._prior_piece(config, sizes[-1])
        bottom_up = ConvBottomUp(group_levels(len(config.conv_channels), len(dims))) if maps else None
        self.bottom_up = nn.ModuleList([bottom_up or BottomUp(width, len(dims), top_outputs, config.activation)] if deep else [])
        labels = classes if config.conditional else 0
        groups = conv_top_down_groups(config, labels) if maps else top_down_groups(config, dims, width, labels)
        self.downward = nn.ModuleList(groups if deep else [])
        self.top_site = f"z_{len(dims)}" if deep else "z"

    def _prior_piece(self, config: Config, top_dim: int) -> nn.Module:
        return prior_for(config, top_dim)

    @property
    def reads_labels(self) -> bool:
        return self.config.conditional

    @property
    def scored_pixels(self) -> int:
        return self.config.pixels

    # --- the pieces ------------------------------------------------------------------------------------

    def prior(self, batch_shape: tuple[int, ...], condition: torch.Tensor | None = None) -> dist.Distribution:
        """p(z) of the top latent, batch shape ``batch_shape``, event shape (its dimensions,); a prior
        that reads the ``condition`` (``condition(y, x)``) gives p(z | condition)."""
        return self.latent_prior(tuple(batch_shape), self._encode_top, condition)

    def posterior(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> dist.Distribution:
        """q(z | x[, y]) from the encoder, of the top group z_N in a hierarchy; ``condition`` is
        ``condition(y, x)``."""
        return self._bottom_up(x, condition)[0]

    def _bottom_up(self, x: torch.Tensor, condition: torch.Tensor | None):
        """(q(z_N | x[, y]), [h_1, ..., h_N]) for a hierarchy; (q(z | x[, y]), []) for one group."""
        if not self.bottom_up:
            return self.latent_posterior(self.encoder(x, condition)), []
        top, features = self.bottom_up[0](self.encoder.net, x, condition)
        return self.latent_posterior(top), features

    def likelihood(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z[, y]) from the decoder, one factor per pixel; batch shape z's leading shape."""
        return self.observation.distribution(self.decoder(z, condition))

    def _encode_top(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dist.Distribution:
        """q(top latent | x[, y]) for the VampPrior's pseudo-inputs, y the one-hot of class indices
        ``labels``."""
        condition = self.condition(self.one_hot(labels)) if labels is not None else None
        return self.posterior(x, condition)

    def one_hot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Class indices -> the one-hot vectors y the networks read (None passes through)."""
        return None if labels is None else one_hot(labels, self.config.num_classes)

    def condition(self, y: torch.Tensor | None, x: torch.Tensor | None = None) -> torch.Tensor | None:
        """What the networks see of the label: ``label_scale * y``, or None for the plain VAE.

        The scale is a design choice, not a constant of the model: a larger input makes the label's
        weights learn faster than the encoder can hide the class in z (see README)."""
        if not self.config.conditional:
            return None
        if y is None:
            raise PyroVAEError("the conditional VAE needs the one-hot labels y")
        return self.config.label_scale * y

    # --- Pyro's model and guide --------------------------------------------------------------------

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, kl_scale: float = 1.0):
        """p(x, z | y) = p(z) p(x | z, y), or with N groups p(z_N) prod_l p(z_l | z_>l, y) p(x | z_1, y);
        ``kl_scale`` weighs the latent sites (objectives.py)."""
        self._register_model()
        with pyro.plate("data", x.shape[0]):
            self._generate(x, self.condition(y, x), kl_scale)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, kl_scale: float = 1.0):
        """q(z | x, y), or with N groups q(z_N | x, y) prod_l q(z_l | z_>l, x, y), drawn in the model's
        order; z reparametrized; the same ``kl_scale`` as the model's latent sites."""
        self._register_guide()
        with pyro.plate("data", x.shape[0]):
            self._infer(x, self.condition(y, x), kl_scale)

    def _generate(self, x: torch.Tensor, condition: torch.Tensor | None, kl_scale: float) -> None:
        """The model's latent sites (scaled by ``kl_scale``) and its observed site "x", in the plate."""
        with poutine.scale(scale=kl_scale):
            z = pyro.sample(self.top_site, self.prior((x.shape[0],), condition))
            z = self.descend(z, condition, lambda group, state: pyro.sample(group.site, group.prior(state)))
        pyro.sample("x", self.likelihood(z, condition), obs=x)

    def _infer(self, x: torch.Tensor, condition: torch.Tensor | None, kl_scale: float) -> None:
        """The guide's latent sites, scaled by ``kl_scale`` like the model's, in the plate."""
        top, features = self._bottom_up(x, condition)
        with poutine.scale(scale=kl_scale):
            z = pyro.sample(self.top_site, top)
            self.descend(z, condition, lambda group, state: pyro.sample(
                group.site, group.posterior(state, features[group.level - 1])))  # fmt: skip

    def descend(self, z_top: torch.Tensor, condition: torch.Tensor | None, choose) -> torch.Tensor:
        """Down the groups below the top from z_N: each group's top-down state, then its z_l =
        ``choose(group, state)`` (a site of the model or the guide, a draw, a mean); returns z_1, the
        latent the decoder reads (z_top itself for one group)."""
        z, state = z_top, None
        for group in self.downward:
            state = group.state(z, state, condition)
            z = choose(group, state)
        return z

    def _register_model(self) -> None:
        pyro.module("decoder", self.decoder)
        self._register("latent_prior", "downward")

    def _register_guide(self) -> None:
        pyro.module("encoder", self.encoder)
        self._register("latent_posterior", "bottom_up", "downward")

    def _register(self, *pieces: str) -> None:
        """Pieces with learned parameters (a VampPrior's pseudo-inputs, a flow, a second layer) join
        Pyro's parameter store under their own names; the standard normal prior and Gaussian q have
        none, so a one-layer default VAE registers exactly its encoder and decoder."""
        for piece in pieces:
            module = getattr(self, piece)
            if any(True for _ in module.parameters()):
                pyro.module(piece, module)

    def closed_form_kl(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | None:
        """KL(q(z|x) || p(z)) per image by hand where one exists (one layer, Gaussian q and p)."""
        if self.downward:
            return None
        condition = self.condition(y, x)
        return closed_form_kl(self.posterior(x, condition), self.prior((x.shape[0],), condition))

    # --- what the figures and sampling use -----------------------------------------------------------

    @torch.no_grad()
    def posterior_parameters(self, x: torch.Tensor, y: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(E_q, sd_q) of every group, the top first, each given the means above it: q(z_N | x), then
        q(z_l | z_>l = their means, x) down to z_1 (q(z | x) alone for one group). A flow's are its
        base's pushed through (``_mean``) and its base's scale."""
        condition = self.condition(y, x)
        top, features = self._bottom_up(x, condition)
        parameters = [(_mean(top), _scale(top))]

        def mean_of(group, state):
            posterior = group.posterior(state, features[group.level - 1])
            parameters.append((_mean(posterior), _scale(posterior)))
            return parameters[-1][0]

        self.descend(parameters[0][0], condition, mean_of)
        return parameters

    def posterior_means(self, x: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        """E_q of every group, the top first, each given the means above it: [E[z_N | x], ...,
        E[z_1 | z_>1, x]] ([E[z | x]] for one group)."""
        return [mean for mean, _ in self.posterior_parameters(x, y)]

    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The point a figure encodes an image to: E_q[z | x, y], or in a hierarchy z_1's mean given
        the means above it."""
        return self.posterior_means(x, y)[-1]

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None, x: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, y] in [0, 1], the likelihood's mean (``Likelihood.mean``); ``x`` for a model whose
        condition is read from the image (completion)."""
        return self.observation.mean(self.decoder(z, self.condition(y, x)))


def _mean(distribution: dist.Distribution) -> torch.Tensor:
    """The mean, or for a flow (no closed-form mean) the flow applied to its base's mean."""
    if isinstance(distribution, dist.TransformedDistribution):
        value = distribution.base_dist.mean
        for transform in distribution.transforms:
            value = transform(value)
        return value
    return distribution.mean


def _scale(distribution: dist.Distribution) -> torch.Tensor:
    """The standard deviation, or for a flow its base's."""
    if isinstance(distribution, dist.TransformedDistribution):
        return distribution.base_dist.stddev
    return distribution.stddev
