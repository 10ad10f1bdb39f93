"""The VAE as a Pyro model and guide, and the closed-form pieces of its ELBO.

Generative model, for each image n (the plate ``data``):

    z_n ~ N(0, I)                                     (prior p(z), site "z")
    x_n ~ p(x | z_n[, y_n])                            (likelihood, site "x", observed)

Amortized guide:

    q(z_n | x_n[, y_n]) = N(z_loc(x_n, y_n), diag z_scale(x_n, y_n)^2),  z = z_loc + z_scale * eps

SVI maximizes the evidence lower bound, per image

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .config import Config
from .data import IMAGE_PIXELS, NUM_CLASSES
from .errors import PyroVAEError
from .networks import Decoder, Encoder


def gaussian_kl(z_loc: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per data point, summed over the last dimension:

        KL = -1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
    """
    return -0.5 * (1 + 2 * z_scale.log() - z_loc.pow(2) - z_scale.pow(2)).sum(-1)


def softplus(logits: torch.Tensor) -> torch.Tensor:
    """log(1 + e^l) = max(l, 0) + log(1 + e^-|l|), stable for any l.

    Written with exp and log because torch vectorizes those on CPU while its softplus and log1p are
    scalar loops (4.8 ns a value against 1.6 for this form, bench/kernels.py): evaluation takes it
    over 40 billion logits. Where e^-|l| < 6e-8 the 1 + e^-|l| rounds to 1 and drops at most 6e-8
    nats a pixel."""
    return nn.functional.relu(logits) + torch.log(1 + torch.exp(-logits.abs()))


def pixel_distribution(decoder_output: torch.Tensor, config: Config) -> dist.Distribution:
    """p(x | z) over the 784 pixels, one independent factor per pixel.

    bernoulli:             x_i ~ Bernoulli(sigmoid(f_i(z)))          for binarized pixels
    normal:                x_i ~ N(sigmoid(f_i(z)), normal_scale^2)  for grey pixels in [0, 1]
    continuous-bernoulli:  x_i ~ CB(sigmoid(f_i(z)))                 for grey pixels in [0, 1]

    The continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) is the Bernoulli's form
    lambda^x (1 - lambda)^(1 - x) normalized into a density on [0, 1] by C(lambda).
    """
    if config.likelihood == "bernoulli":
        return dist.Bernoulli(logits=decoder_output).to_event(1)
    if config.likelihood == "continuous-bernoulli":
        return dist.ContinuousBernoulli(logits=decoder_output).to_event(1)
    return dist.Normal(torch.sigmoid(decoder_output), config.normal_scale).to_event(1)


def pixel_mean(decoder_output: torch.Tensor, config: Config) -> torch.Tensor:
    """E[x | z] in [0, 1]: sigmoid(l) for bernoulli and normal; the continuous Bernoulli's mean
    lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)) is not its parameter lambda."""
    if config.likelihood == "continuous-bernoulli":
        return dist.ContinuousBernoulli(logits=decoder_output).mean
    return torch.sigmoid(decoder_output)


def reconstruction_log_likelihood(x: torch.Tensor, decoder_output: torch.Tensor, config: Config):
    """log p(x | z) per data point, written out by hand (the tests check Pyro against it).

    bernoulli:  sum_i x_i * l_i - log(1 + exp(l_i))                        (l = logits)
    normal:     sum_i -(x_i - m_i)^2 / (2 s^2) - log s - log(2 pi) / 2     (m = sigmoid(l))
    continuous-bernoulli: the bernoulli term plus sum_i log C(sigmoid(l_i)), C from torch
    """
    if config.likelihood in ("bernoulli", "continuous-bernoulli"):
        bernoulli_form = (x * decoder_output - softplus(decoder_output)).sum(-1)
        if config.likelihood == "bernoulli":
            return bernoulli_form
        normalizer = dist.ContinuousBernoulli(logits=decoder_output)._cont_bern_log_norm()
        return bernoulli_form + normalizer.sum(-1)
    scale = config.normal_scale
    mean = torch.sigmoid(decoder_output)
    log_norm = torch.log(torch.tensor(scale)) + 0.5 * torch.log(torch.tensor(2 * torch.pi))
    return (-((x - mean) ** 2) / (2 * scale**2) - log_norm).sum(-1)


class VAE(nn.Module):
    """Encoder and decoder networks plus the Pyro ``model`` and ``guide`` that use them.

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

    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """What the networks see of the label: ``label_scale * y``, or None for the plain VAE.

        The scale is a design choice, not a constant of the model: a larger input makes the label's
        weights learn faster than the encoder can hide the class in z (see README)."""
        if not self.config.conditional:
            return None
        if y is None:
            raise PyroVAEError("the conditional VAE needs the one-hot labels y")
        return self.config.label_scale * y

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """p(x, z | y) = N(z; 0, I) * p(x | decoder(z, y))."""
        pyro.module("decoder", self.decoder)
        condition = self.condition(y)
        batch_size = x.shape[0]
        with pyro.plate("data", batch_size):
            z_loc = x.new_zeros(batch_size, self.config.z_dim)
            z_scale = x.new_ones(batch_size, self.config.z_dim)
            z = pyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))
            pyro.sample("x", pixel_distribution(self.decoder(z, condition), self.config), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """q(z | x, y) = N(z_loc, diag z_scale^2), (z_loc, z_scale) = encoder(x, y); z reparametrized."""
        pyro.module("encoder", self.encoder)
        condition = self.condition(y)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x, condition)
            pyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, y] in [0, 1], the likelihood's mean (see ``pixel_mean``)."""
        return pixel_mean(self.decoder(z, self.condition(y)), self.config)
