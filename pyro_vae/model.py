"""The VAE: three pieces as distributions, and the Pyro ``model`` and ``guide`` written from them.

Generative model, for each image n (the plate ``data``):

    z_n ~ p(z)                                        (``VAE.prior``: priors.py, site "z")
    x_n ~ p(x | z_n[, y_n])                            (``VAE.likelihood``: likelihoods.py, site "x")

Amortized guide:

    z_n ~ q(z | x_n[, y_n])                            (``VAE.posterior``: posteriors.py, site "z")

SVI maximizes the evidence lower bound, per image (objectives.py)

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x).

Evaluation, sampling and the figures ask for the same three pieces, so a new prior or posterior is
written once, in its module. Every piece broadcasts over leading dimensions, so the model and guide
also run under a particle plate (the IWAE bound) with the batch shape (particles, n).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn

from .config import IMAGE_PIXELS, NUM_CLASSES, Config
from .errors import PyroVAEError
from .likelihoods import pixel_distribution, pixel_mean
from .networks import Decoder, Encoder
from .posteriors import POSTERIORS
from .priors import PRIORS


class VAE(nn.Module):
    """Encoder and decoder networks, the prior and posterior pieces, and the Pyro ``model`` and
    ``guide`` that use them.

    ``x`` is a batch of flattened images (batch, 784); ``y`` the one-hot labels (batch, 10), which
    the conditional VAE needs and the plain VAE ignores.
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        condition_dim = NUM_CLASSES if config.conditional else 0
        shared = dict(
            condition_dim=condition_dim,
            condition_every_layer=config.label_every_layer,
            activation=config.activation,
        )
        self.encoder = Encoder(IMAGE_PIXELS, config.hidden_dims, config.z_dim, **shared)
        self.decoder = Decoder(config.z_dim, config.hidden_dims, IMAGE_PIXELS, **shared)
        self.latent_prior = PRIORS["normal"](config.z_dim)
        self.latent_posterior = POSTERIORS["gaussian"]()

    # --- the three pieces ------------------------------------------------------------------------

    def prior(self, batch_shape: tuple[int, ...]) -> dist.Distribution:
        """p(z), batch shape ``batch_shape``, event shape (z_dim,)."""
        return self.latent_prior(tuple(batch_shape))

    def posterior(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> dist.Distribution:
        """q(z | x[, y]) from the encoder; ``condition`` is ``VAE.condition(y)``."""
        return self.latent_posterior(*self.encoder(x, condition))

    def likelihood(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z[, y]) from the decoder, one factor per pixel; batch shape z's leading shape."""
        return pixel_distribution(self.decoder(z, condition), self.config)

    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
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
        """p(x, z | y) = p(z) p(x | z, y); ``kl_scale`` weighs the latent site (objectives.py)."""
        pyro.module("decoder", self.decoder)
        self._register("latent_prior")
        condition = self.condition(y)
        with pyro.plate("data", x.shape[0]):
            with poutine.scale(scale=kl_scale):
                z = pyro.sample("z", self.prior((x.shape[0],)))
            pyro.sample("x", self.likelihood(z, condition), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, kl_scale: float = 1.0):
        """q(z | x, y), z reparametrized; the same ``kl_scale`` as the model's latent site."""
        pyro.module("encoder", self.encoder)
        self._register("latent_posterior")
        with pyro.plate("data", x.shape[0]):
            with poutine.scale(scale=kl_scale):
                pyro.sample("z", self.posterior(x, self.condition(y)))

    def _register(self, piece: str) -> None:
        """A piece with learned parameters (a VampPrior's pseudo-inputs, a flow) joins Pyro's
        parameter store under its own name; the standard normal prior and Gaussian q have none."""
        module = getattr(self, piece)
        if any(True for _ in module.parameters()):
            pyro.module(piece, module)

    # --- what the figures and sampling use -----------------------------------------------------------

    @torch.no_grad()
    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E_q[z | x, y], the point a figure encodes an image to."""
        return self.posterior(x, self.condition(y)).mean

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, y] in [0, 1], the likelihood's mean (see ``likelihoods.pixel_mean``)."""
        return pixel_mean(self.decoder(z, self.condition(y)), self.config)
