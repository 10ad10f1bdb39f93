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
from .posteriors import ConditionalGaussian, closed_form_kl, posterior_for
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
        self.latent_posterior = posterior_for(config)
        self.encoder = Encoder(image_network(config, self.latent_posterior.encoder_outputs(), **shared))
        self.decoder = Decoder(image_generator(config, config.z_dim, config.decoder_outputs, **shared))
        two_layers = config.stochastic_layers == 2
        top_dim = config.top_z_dim if two_layers else config.z_dim
        self.latent_prior = self._prior_piece(config, top_dim)
        # Two stochastic layers: p(z1 | z2[, y]) downward in the model, q(z2 | z1[, y]) upward in the guide,
        # their hidden layers half as wide as the last layer of the run's own network; a label enters
        # them as it enters the encoder and decoder (an image condition does not: it reaches z through
        # the prior network and the decoder).
        hidden = max(1, last_width(config) // 2)
        labels = dict(condition_dim=classes if config.conditional else 0, condition_scale=1 / config.label_scale)
        self.downward = nn.ModuleList([ConditionalGaussian(top_dim, hidden, config.z_dim, **labels)] if two_layers else [])
        self.upward = nn.ModuleList([ConditionalGaussian(config.z_dim, hidden, top_dim, **labels)] if two_layers else [])
        self.top_site = "z_top" if two_layers else "z"

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
        """q(z | x[, y]) from the encoder; ``condition`` is ``condition(y, x)``."""
        return self.latent_posterior(self.encoder(x, condition))

    def likelihood(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z[, y]) from the decoder, one factor per pixel; batch shape z's leading shape."""
        return self.observation.distribution(self.decoder(z, condition))

    def _encode_top(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dist.Distribution:
        """q(top latent | x[, y]) for the VampPrior's pseudo-inputs, y the one-hot of class indices
        ``labels``: q(z|x, y), or with two layers q(z2 | z1 = E[z1|x, y], y)."""
        condition = self.condition(self.one_hot(labels)) if labels is not None else None
        q = self.posterior(x, condition)
        for layer in self.upward:
            q = layer(_mean(q), condition)
        return q

    def layer_condition(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        """What a second layer's networks read of the label for a figure or a count: ``condition(y)``."""
        return None if y is None else self.condition(y)

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
        """p(x, z | y) = p(z) p(x | z, y), or with two layers p(z2) p(z1 | z2, y) p(x | z1, y);
        ``kl_scale`` weighs the latent sites (objectives.py)."""
        self._register_model()
        with pyro.plate("data", x.shape[0]):
            self._generate(x, self.condition(y, x), kl_scale)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, kl_scale: float = 1.0):
        """q(z | x, y), or with two layers q(z1 | x, y) q(z2 | z1, y); z reparametrized; the same
        ``kl_scale`` as the model's latent sites."""
        self._register_guide()
        with pyro.plate("data", x.shape[0]):
            self._infer(x, self.condition(y, x), kl_scale)

    def _generate(self, x: torch.Tensor, condition: torch.Tensor | None, kl_scale: float) -> None:
        """The model's latent sites (scaled by ``kl_scale``) and its observed site "x", in the plate."""
        with poutine.scale(scale=kl_scale):
            z = pyro.sample(self.top_site, self.prior((x.shape[0],), condition))
            for layer in self.downward:
                z = pyro.sample("z", layer(z, condition))
        pyro.sample("x", self.likelihood(z, condition), obs=x)

    def _infer(self, x: torch.Tensor, condition: torch.Tensor | None, kl_scale: float) -> None:
        """The guide's latent sites, scaled by ``kl_scale`` like the model's, in the plate."""
        with poutine.scale(scale=kl_scale):
            z = pyro.sample("z", self.posterior(x, condition))
            for layer in self.upward:
                pyro.sample("z_top", layer(z, condition))

    def _register_model(self) -> None:
        pyro.module("decoder", self.decoder)
        self._register("latent_prior", "downward")

    def _register_guide(self) -> None:
        pyro.module("encoder", self.encoder)
        self._register("latent_posterior", "upward")

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
    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E_q[z | x, y], the point a figure encodes an image to."""
        return _mean(self.posterior(x, self.condition(y, x)))

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, y] in [0, 1], the likelihood's mean (``Likelihood.mean``)."""
        return self.observation.mean(self.decoder(z, self.condition(y)))


def _mean(distribution: dist.Distribution) -> torch.Tensor:
    """The mean, or for a flow (no closed-form mean) the flow applied to its base's mean."""
    if isinstance(distribution, dist.TransformedDistribution):
        value = distribution.base_dist.mean
        for transform in distribution.transforms:
            value = transform(value)
        return value
    return distribution.mean
