"""Likelihoods p(x | z): the decoder's logits turned into a distribution over the C*H*W pixels, one
independent factor per pixel, and the same log-density written out by hand (the tests check Pyro's
against it).

    bernoulli:             x_i ~ Bernoulli(sigmoid(f_i(z)))          for binarized pixels
    normal:                x_i ~ N(sigmoid(f_i(z)), normal_scale^2)  for grey pixels in [0, 1]
    continuous-bernoulli:  x_i ~ CB(sigmoid(f_i(z)))                 for grey pixels in [0, 1]

The continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) is the Bernoulli's form
lambda^x (1 - lambda)^(1 - x) normalized into a density on [0, 1] by C(lambda).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

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


def pixel_distribution(decoder_output: torch.Tensor, config: Config, mask: torch.Tensor | None = None) -> dist.Distribution:
    """p(x | z) over the C*H*W pixels (see the module's docstring), batch shape that of the logits;
    with a boolean ``mask`` (C*H*W,), only the pixels where it is True are scored (image completion)."""
    if config.likelihood == "bernoulli":
        pixels = BernoulliLogits(logits=decoder_output)
    elif config.likelihood == "continuous-bernoulli":
        pixels = dist.ContinuousBernoulli(logits=decoder_output)
    else:
        pixels = dist.Normal(torch.sigmoid(decoder_output), config.normal_scale)
    return (pixels if mask is None else pixels.mask(mask)).to_event(1)


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
