"""What SVI maximizes, and its schedule over training steps: the one place that knows the global step.

Pyro's losses are the *negative* bound summed over the batch.

- ``elbo`` with ``--elbo analytic`` (TraceMeanField_ELBO):  E_q[log p(x|z)] - KL(q(z|x) || p(z)),
  the KL in closed form wherever Pyro knows one (a diagonal Gaussian q against a diagonal Gaussian
  p), a Monte-Carlo estimate elsewhere (a flow posterior, a mixture prior).
- ``elbo`` with ``--elbo trace`` (Trace_ELBO):  E_q[log p(x|z) + log p(z) - log q(z|x)], the KL a
  Monte-Carlo estimate.
- ``iwae`` (Burda et al. 2015), K particles per image (``--particles``):

      L_K(x) = E[log (1/K) sum_k p(x, z_k) / q(z_k | x)],  z_1..z_K ~ q(z | x),

  a logsumexp over each image's own particles. Pyro's ``RenyiELBO(alpha=0)`` is not used: it pools
  the particles over the whole batch plate (pyro-ppl issue 3104), which is a different bound for a
  model with one latent per image.

The KL weight beta_t (Higgins et al. 2017; linear warm-up from 0, Sonderby et al. 2016) scales the
latent sites' log p(z) and log q(z|x) in model and guide through ``poutine.scale``, as Pyro's dmm
example does:

    L_beta(x) = E_q[log p(x|z)] - beta_t KL(q(z|x) || p(z)),
    beta_t = beta * min(1, t / (kl_warmup * steps_per_epoch))   (t the 1-based global step).

Evaluation always scores the true model (kl_scale 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import ELBO, Trace_ELBO, TraceMeanField_ELBO

from .config import Config

ELBO_ESTIMATORS = {"analytic": TraceMeanField_ELBO, "trace": Trace_ELBO}


def particle_log_weights(model, guide, particles: int, *args, **kwargs):
    """log w = log p(x, z) - log q(z | x) for ``particles`` draws z ~ q per image, from Pyro's own
    traces: the guide runs under a particle plate (dim -2, the batch plate being dim -1), the model
    replays its draws, and every sample site's log-density is summed over its event but kept per
    particle and per image. Returns (log w, {site: log-density}) with log w of shape (particles, n).
    Whatever pieces the model has (prior, posterior, more latent layers) are covered without being
    named here."""
    with pyro.plate("particles", particles, dim=-2):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    model_log_probs = _site_log_probs(model_trace)
    log_q = sum(_site_log_probs(guide_trace).values())
    return sum(model_log_probs.values()) - log_q, model_log_probs


def _site_log_probs(trace) -> dict[str, torch.Tensor]:
    """Each sample site's log-density, summed over its event dimensions, keeping the plates'."""
    return {
        name: site["fn"].log_prob(site["value"])
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
    }


class IWAE:
    """The importance-weighted bound as a Pyro-style loss (``loss``, ``loss_and_grads``), K draws per
    image in one batched pass, gradients through the reparametrized draws (Burda et al. 2015)."""

    def __init__(self, particles: int):
        self.particles = particles

    def _negative_bound(self, model, guide, *args, **kwargs) -> torch.Tensor:
        log_weights, _ = particle_log_weights(model, guide, self.particles, *args, **kwargs)
        bounds = torch.logsumexp(log_weights, dim=0) - math.log(self.particles)
        return -bounds.sum()

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return self._negative_bound(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self._negative_bound(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()


@dataclass
class Objective:
    """A Pyro loss and the KL weight of each global step (1-based, counted across epochs and resumes)."""

    loss: ELBO | IWAE
    beta: float = 1.0
    warmup_steps: int = 0

    def kl_scale(self, step: int) -> float:
        if self.warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, step / self.warmup_steps)

    def loss_and_grads(self, model, guide, step: int, *args) -> float:
        return self.loss.loss_and_grads(model, guide, *args, kl_scale=self.kl_scale(step))


def make_objective(config: Config, steps_per_epoch: int = 1) -> Objective:
    if config.objective == "iwae":
        return Objective(IWAE(config.particles))
    return Objective(ELBO_ESTIMATORS[config.elbo](), config.beta, config.kl_warmup * steps_per_epoch)


def test_elbo_estimator(config: Config) -> ELBO:
    """The ELBO the training log reports on the test split, whatever the training objective."""
    return ELBO_ESTIMATORS[config.elbo]()
