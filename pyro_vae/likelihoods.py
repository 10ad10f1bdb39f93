"""Likelihoods p(x | z): the decoder's logits turned into a distribution over the C*H*W pixels, one
independent factor per pixel, and the same log-density written out by hand (the tests check Pyro's
against it).

    bernoulli:             x_i ~ Bernoulli(sigmoid(f_i(z)))          for binarized pixels
    normal:                x_i ~ N(sigmoid(f_i(z)), normal_scale^2)  for grey pixels in [0, 1]
    continuous-bernoulli:  x_i ~ CB(sigmoid(f_i(z)))                 for grey pixels in [0, 1]

    discretized-logistic:  x_i ~ DLogistic(mu_i(z), s_i(z))         for 8-bit pixels (a probability)

The continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) is the Bernoulli's form
lambda^x (1 - lambda)^(1 - x) normalized into a density on [0, 1] by C(lambda).

The discretized logistic (Salimans et al. 2017, PixelCNN++, eq. 2) gives each of the 256 levels of a
subpixel the mass a logistic puts on its bin, so its log-probability is that of the 8-bit image itself:
bits per dimension need no dequantization bound (``DiscretizedLogistic``). The decoder gives
``Config.decoder_outputs`` numbers per subpixel, each kind a block of C*H*W.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pyro.distributions as dist
import torch
from torch import nn

if TYPE_CHECKING:  # type hints only: config.py asks this module for a likelihood's outputs
    from .config import Config


def softplus(logits: torch.Tensor) -> torch.Tensor:
    """log(1 + e^l) = max(l, 0) + log(1 + e^-|l|), stable for any l.

    Written with exp and log because torch vectorizes those on CPU while its softplus and log1p are
    scalar loops (4.8 ns a value against 1.6 for this form, bench/kernels.py): evaluation takes it
    over 40 billion logits. Where e^-|l| < 6e-8 the 1 + e^-|l| rounds to 1 and drops at most 6e-8
    nats a pixel. On a GPU torch's one fused kernel stays, as for ``networks.elu``."""
    if logits.device.type != "cpu":
        return nn.functional.softplus(logits)
    return nn.functional.relu(logits) + torch.log(1 + torch.exp(-logits.abs()))


class BernoulliLogits(dist.Bernoulli):
    """Pyro's Bernoulli(logits=l) with log p(x) = x l - log(1 + e^l) through ``softplus`` above
    (Pyro's own goes through binary_cross_entropy_with_logits, a scalar loop on these CPUs)."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return value * self.logits - softplus(self.logits)


# PixelCNN++'s floor on log s: a narrower logistic than e^-7 (1/1100 of the [-1, 1] range, a
# seventh of a bin) puts all its mass in one bin already
MIN_LOG_SCALE = -7.0
BIN_HALF_WIDTH = 1 / 255  # on [-1, 1] the 256 levels are 2/255 apart


class DiscretizedLogistic(dist.TorchDistribution):
    """The discretized logistic (mixture) of PixelCNN++ (Salimans et al. 2017, eq. 2), one per subpixel.

    A pixel x in {0, 1/255, ..., 1} is mapped to v = 2x - 1 in [-1, 1], and with sigma the logistic
    sigmoid, a location mu and a scale s,

        P(v) = sigma((v + 1/255 - mu) / s) - sigma((v - 1/255 - mu) / s)     for -1 < v < 1,
        P(-1) = sigma((-1 + 1/255 - mu) / s),       P(1) = 1 - sigma((1 - 1/255 - mu) / s):

    the two edge bins take the tails, so the 256 probabilities sum to 1 (tests/test_math.py). With N
    components, P(v) = sum_k pi_k P_k(v), pi = softmax(logits). Where a bin's mass is below 1e-5 the
    difference of sigmoids loses its digits, and PixelCNN++ takes the density at the bin's centre
    times its width 2/255 instead. Parameters (..., subpixels, N); batch shape (..., subpixels)."""

    arg_constraints = {}
    support = dist.constraints.unit_interval
    has_rsample = False

    def __init__(self, logits: torch.Tensor, locs: torch.Tensor, log_scales: torch.Tensor, validate_args=None):
        self.logits, self.locs = logits, locs
        self.log_scales = log_scales.clamp(min=MIN_LOG_SCALE)
        super().__init__(locs.shape[:-1], validate_args=validate_args)

    @classmethod
    def from_decoder(cls, decoder_output: torch.Tensor, mixture: int) -> DiscretizedLogistic:
        """Decoder output (..., K * subpixels) in blocks [logits,] locs, log scales, each (N, subpixels)."""
        kinds = 2 if mixture == 1 else 3
        subpixels = decoder_output.shape[-1] // (kinds * mixture)
        blocks = decoder_output.reshape(*decoder_output.shape[:-1], kinds, mixture, subpixels).movedim(-2, -1)
        if mixture == 1:
            locs, log_scales = blocks.unbind(-3)
            return cls(torch.zeros_like(locs), locs, log_scales)
        return cls(*blocks.unbind(-3))

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.locs.shape[-1:]
        return DiscretizedLogistic(self.logits.expand(shape), self.locs.expand(shape), self.log_scales.expand(shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        v = (2 * value - 1).unsqueeze(-1)
        centered, inverse_scale = v - self.locs, torch.exp(-self.log_scales)
        upper, lower = inverse_scale * (centered + BIN_HALF_WIDTH), inverse_scale * (centered - BIN_HALF_WIDTH)
        log_cdf_upper = upper - softplus(upper)  # log sigma(u), the lowest bin
        log_survival_lower = -softplus(lower)  # log(1 - sigma(l)), the highest bin
        mass = torch.sigmoid(upper) - torch.sigmoid(lower)
        middle = inverse_scale * centered
        log_density_middle = middle - self.log_scales - 2 * softplus(middle)  # log of the logistic density at v
        inner = torch.where(mass > 1e-5, torch.log(mass.clamp(min=1e-12)), log_density_middle + math.log(2 * BIN_HALF_WIDTH))
        log_bins = torch.where(v < -0.999, log_cdf_upper, torch.where(v > 0.999, log_survival_lower, inner))
        return torch.logsumexp(log_bins + torch.log_softmax(self.logits, dim=-1), dim=-1)

    @property
    def mean(self) -> torch.Tensor:
        """E[x] in [0, 1], each component's location clipped to [-1, 1] (the edge bins take the tails):
        exact as s -> 0, a picture's mean rather than the exact mean for wide components."""
        weights = torch.softmax(self.logits, dim=-1)
        return ((weights * self.locs.clamp(-1, 1)).sum(-1) + 1) / 2

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """A component, then mu + s log(u / (1 - u)), clipped to [-1, 1] and rounded to its level."""
        shape = torch.Size(sample_shape) + self.locs.shape
        with torch.no_grad():
            component = dist.Categorical(logits=self.logits).sample(sample_shape).unsqueeze(-1)
            locs = self.locs.expand(shape).gather(-1, component).squeeze(-1)
            scales = self.log_scales.expand(shape).gather(-1, component).squeeze(-1).exp()
            uniform = torch.rand_like(locs).clamp(1e-5, 1 - 1e-5)
            v = (locs + scales * (torch.log(uniform) - torch.log1p(-uniform))).clamp(-1, 1)
            return torch.round((v + 1) / 2 * 255) / 255


class Likelihood:
    """A likelihood piece: what the decoder gives it, what it scores, and how.

    ``data``: what x is, "binarized" (0 or 1, drawn afresh from the grey level), "grey" (any value
    in [0, 1]) or "8-bit" (the 256 levels k/255); ``discrete``: log p(x|z) is a probability of the
    stored values, so bits per dimension need no dequantization; ``decoder_outputs``: numbers per
    subpixel; ``scored``: (the data it scores, its log-likelihood's units), for tables."""

    data, decoder_outputs, scored = "grey", 1, ("", "")

    @property
    def discrete(self) -> bool:
        return self.data != "grey"

    def pixels(self, decoder_output: torch.Tensor) -> dist.Distribution:
        """One factor per subpixel, batch shape (..., C*H*W)."""
        raise NotImplementedError

    def distribution(self, decoder_output: torch.Tensor, mask: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z) over the C*H*W subpixels, one event; with a boolean ``mask`` (C*H*W,), only the
        subpixels where it is True are scored (image completion)."""
        pixels = self.pixels(decoder_output)
        return (pixels if mask is None else pixels.mask(mask)).to_event(1)

    def mean(self, decoder_output: torch.Tensor) -> torch.Tensor:
        """E[x | z] in [0, 1]."""
        return self.pixels(decoder_output).mean

    def log_likelihood(self, x: torch.Tensor, decoder_output: torch.Tensor) -> torch.Tensor:
        """log p(x | z) per data point written out by hand (the tests check Pyro's against it)."""
        raise NotImplementedError


class Bernoulli(Likelihood):
    """x_i ~ Bernoulli(sigmoid(l_i)):  log p(x|z) = sum_i x_i l_i - log(1 + e^l_i)."""

    data = "binarized"
    scored = ("dynamically binarized images, Bernoulli", "log P of the binarized image (nats); bits per binary pixel")

    def pixels(self, decoder_output):
        return BernoulliLogits(logits=decoder_output)

    def mean(self, decoder_output):
        return torch.sigmoid(decoder_output)

    def log_likelihood(self, x, decoder_output):
        return (x * decoder_output - softplus(decoder_output)).sum(-1)


class Normal(Likelihood):
    """x_i ~ N(sigmoid(l_i), s^2):  log p(x|z) = sum_i -(x_i - m_i)^2 / (2 s^2) - log s - log(2 pi) / 2."""

    scored = ("grey images, Normal density", "density of grey pixels (nats); bits/dim of the dequantized 8-bit image")

    def __init__(self, scale: float):
        self.scale = scale

    def pixels(self, decoder_output):
        return dist.Normal(torch.sigmoid(decoder_output), self.scale)

    def mean(self, decoder_output):
        return torch.sigmoid(decoder_output)

    def log_likelihood(self, x, decoder_output):
        log_norm = math.log(self.scale) + 0.5 * math.log(2 * math.pi)
        return (-((x - torch.sigmoid(decoder_output)) ** 2) / (2 * self.scale**2) - log_norm).sum(-1)


class ContinuousBernoulli(Likelihood):
    """x_i ~ CB(sigmoid(l_i)): the Bernoulli's form plus log C(lambda_i); its mean
    lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)) is not its parameter lambda."""

    scored = ("grey images, continuous Bernoulli density",
              "density of grey pixels (nats); bits/dim of the dequantized 8-bit image")  # fmt: skip

    def pixels(self, decoder_output):
        return dist.ContinuousBernoulli(logits=decoder_output)

    def log_likelihood(self, x, decoder_output):
        normalizer = self.pixels(decoder_output)._cont_bern_log_norm()
        return (x * decoder_output - softplus(decoder_output) + normalizer).sum(-1)


class DiscretizedLogisticPixels(Likelihood):
    """x_i ~ the discretized logistic (mixture) of ``DiscretizedLogistic``, ``mixture`` components:
    a location and a log scale per component, plus the mixture's logits when there are several."""

    data = "8-bit"
    scored = ("8-bit images, discretized logistic", "log P of the 8-bit image (nats); its bits/dim, no dequantization")

    def __init__(self, mixture: int):
        self.mixture = mixture
        self.decoder_outputs = 2 if mixture == 1 else 3 * mixture

    def pixels(self, decoder_output):
        return DiscretizedLogistic.from_decoder(decoder_output, self.mixture)

    def log_likelihood(self, x, decoder_output):
        return self.pixels(decoder_output).log_prob(x).sum(-1)


SCORED = {name: piece.scored for name, piece in (("bernoulli", Bernoulli), ("normal", Normal),
          ("continuous-bernoulli", ContinuousBernoulli), ("discretized-logistic", DiscretizedLogisticPixels))}  # fmt: skip


def likelihood_for(config: Config) -> Likelihood:
    """The likelihood piece ``config.likelihood`` names, with its parameters from ``config``."""
    if config.likelihood == "bernoulli":
        return Bernoulli()
    if config.likelihood == "continuous-bernoulli":
        return ContinuousBernoulli()
    if config.likelihood == "discretized-logistic":
        return DiscretizedLogisticPixels(config.mixture)
    return Normal(config.normal_scale)


def reconstruction_log_likelihood(x: torch.Tensor, decoder_output: torch.Tensor, config: Config):
    """log p(x | z) per data point, written out by hand in each piece's ``log_likelihood``."""
    return likelihood_for(config).log_likelihood(x, decoder_output)
