"""What SVI maximizes, and its schedule over training steps: the one place that knows the global step.

Pyro's losses are the *negative* bound summed over the batch.

- ``elbo`` with ``--elbo analytic`` (TraceMeanField_ELBO):  E_q[log p(x|z)] - KL(q(z|x) || p(z)),
  the KL in closed form wherever Pyro knows one (a diagonal Gaussian q against a diagonal Gaussian
  p), a Monte-Carlo estimate elsewhere (a flow posterior, a mixture prior).
- ``elbo`` with ``--elbo trace`` (Trace_ELBO):  E_q[log p(x|z) + log p(z) - log q(z|x)], the KL a
  Monte-Carlo estimate.
  With ``--particles K`` either ELBO averages K draws per image (Pyro's ``num_particles``, vectorized).
- ``iwae`` (Burda et al. 2015), K particles per image (``--particles``):

      L_K(x) = E[log (1/K) sum_k p(x, z_k) / q(z_k | x)],  z_1..z_K ~ q(z | x),

  a logsumexp over each image's own particles. Pyro's ``RenyiELBO(alpha=0)`` is not used: it pools
  the particles over the whole batch plate (pyro-ppl issue 3104), which is a different bound for a
  model with one latent per image.

- semi-supervised (``--labels``, Kingma et al. 2014, M2): ``SemiSupervised`` below, the labeled
  images' bound with y observed, the unlabeled images' bound with y summed out exactly, and the
  classifier's auxiliary term; the bounds are ELBOs, or with ``--objective iwae`` importance-weighted
  (``LabelsImportanceWeighted``).

The KL weight beta_t (Higgins et al. 2017; linear warm-up from 0, Sonderby et al. 2016) scales the
latent sites' log p(z) and log q(z|x) in model and guide through ``poutine.scale``, as Pyro's dmm
example does:

    L_beta(x) = E_q[log p(x|z)] - beta_t KL(q(z|x) || p(z)),
    beta_t = beta * min(1, t / (kl_warmup * steps_per_epoch))   (t the 1-based global step).

Under the IWAE bound the same scale weighs those terms inside each importance weight, as Pyro's
ELBOs weigh a scaled site, w_k = p(x|z_k) (p(z_k) / q(z_k|x))^beta_t: the warm-up Sonderby et al.
(2016) combine with importance weighting; at beta_t = 1 it is L_K.

Evaluation always scores the true model (kl_scale 1).

Image completion (``--visible-quadrants``, completion.py) trains its deterministic baseline first:
for the first ``baseline_epochs * steps_per_epoch`` steps the loss is the baseline's own
-log p_b(x_hidden | x_visible), and only then the CVAE's bound, as Sohn et al. (2015) and Pyro's
cvae example do (there as two separate trainings; here one schedule, so resume stays exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import ELBO, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO, config_enumerate
from pyro.poutine.util import site_is_subsample

from .config import Config
from .data import Split, binarize, one_hot
from .likelihoods import likelihood_for

ELBO_ESTIMATORS = {"analytic": TraceMeanField_ELBO, "trace": Trace_ELBO}
NEGLIGIBLE_WEIGHT = 1e-8  # LabelsWeighted's cut-off for a pair's q(y|x)


def particle_log_weights(model, guide, particles: int, *args, **kwargs):
    """log w = log p(x, z) - log q(z | x) for ``particles`` draws z ~ q per image, from Pyro's own
    traces: the guide runs under a particle plate (dim -2, the batch plate being dim -1), the model
    replays its draws, and every sample site's log-density is summed over its event but kept per
    particle and per image, times the site's ``poutine.scale`` (the KL weight; 1 in evaluation).
    Returns (log w, {site: log-density}) with log w of shape (particles, n). Whatever pieces the model
    has (prior, posterior, more latent layers) are covered without being named here."""
    with pyro.plate("particles", particles, dim=-2):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    model_log_probs = _site_log_probs(model_trace)
    log_q = sum(_site_log_probs(guide_trace).values())
    return sum(model_log_probs.values()) - log_q, model_log_probs


def _site_log_probs(trace) -> dict[str, torch.Tensor]:
    """Each sample site's log-density, summed over its event dimensions, keeping the plates', times
    the site's scale."""
    return {
        name: site["fn"].log_prob(site["value"]) * site["scale"]
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
    }


class DifferentiableLoss:
    """A Pyro-style loss (``loss``, ``loss_and_grads``) from its ``differentiable_loss``."""

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()


class IWAE(DifferentiableLoss):
    """The importance-weighted bound as a Pyro-style loss (``loss``, ``loss_and_grads``), K draws per
    image in one batched pass, gradients through the reparametrized draws (Burda et al. 2015)."""

    def __init__(self, particles: int):
        self.particles = particles

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        log_weights, _ = particle_log_weights(model, guide, self.particles, *args, **kwargs)
        bounds = torch.logsumexp(log_weights, dim=0) - math.log(self.particles)
        return -bounds.sum()


class FreeBits(DifferentiableLoss):
    """The ELBO with each latent group's KL counted as no less than lambda nats (``--free-bits``,
    Kingma et al. 2016):

        L_lambda = E_q[log p(x | z)] - sum_l max(lambda, E_batch[KL(q(z_l | ...) || p(z_l | ...))]),

    the KL of group l averaged over the batch, so a group below lambda nats gets no gradient that would
    push it lower and stays in use. Each KL is in closed form where Pyro has one (``analytic``), else
    log q - log p at the guide's draw; a site's ``poutine.scale`` (the KL weight) multiplies its term.
    With ``particles`` K the draws run under a particle plate and every term is their mean. Evaluation
    and the held-out ELBO score the true ELBO."""

    def __init__(self, free_bits: float, analytic: bool, particles: int = 1):
        self.free_bits, self.analytic, self.particles = free_bits, analytic, particles

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        with pyro.plate("particles", self.particles, dim=-2):
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        loss = 0.0
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):  # the plates' own sites
                continue
            if site["is_observed"]:
                loss = loss - (site["fn"].log_prob(site["value"]) * site["scale"]).sum() / self.particles
                continue
            posterior = guide_trace.nodes[name]
            kl = self._kl(posterior["fn"], site["fn"], posterior["value"])  # (particles, images)
            loss = loss + site["scale"] * kl.shape[-1] * kl.mean().clamp(min=self.free_bits)
        return loss

    def _kl(self, posterior, prior, value) -> torch.Tensor:
        if self.analytic:
            try:
                return torch.distributions.kl_divergence(posterior, prior)
            except NotImplementedError:
                pass
        return posterior.log_prob(value) - prior.log_prob(value)


class LabelsImportanceWeighted(IWAE):
    """The importance-weighted bound of an unlabeled image with its label enumerated inside the
    weights: K draws of z for each of the C classes, z_{k,y} ~ q(z | x, y),

        log p(x) >= E[log (1/K) sum_k sum_y p(x, y, z_{k,y}) / q(z_{k,y} | x, y)],

    each inner sum over y an unbiased estimate of p(x) (its term y of p(x, y)), so the bound tightens to
    log p(x) as K grows, like L_K. q(y | x) cancels out of it: with this objective the classifier
    learns from the labeled images' alpha term alone. The C*n pairs are scored in one pass."""

    def __init__(self, particles: int, num_classes: int):
        super().__init__(particles)
        self.num_classes = num_classes

    def differentiable_loss(self, model, guide, x, y=None, **kwargs) -> torch.Tensor:
        n, classes = x.shape[0], self.num_classes
        labels = one_hot(torch.arange(classes, device=x.device).repeat_interleave(n), classes).to(x.dtype)
        pairs = x.repeat(classes, *[1] * (x.dim() - 1))
        log_weights, _ = particle_log_weights(model, guide, self.particles, pairs, labels, **kwargs)
        log_weights = log_weights.reshape(self.particles * classes, n)  # (K, C*n) -> (K*C, n)
        return -(torch.logsumexp(log_weights, dim=0) - math.log(self.particles)).sum()


class LabelsSummed:
    """The bound of an unlabeled image with its label summed out exactly (Kingma et al. 2014, eq. 7):

        U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)),
        L(x, y) = E_q(z|x,y)[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)],

    by ``TraceEnum_ELBO`` with the guide's label site enumerated in parallel: y takes its 10 values
    along a new leading dimension, so encoder and decoder run once on a (10, n) batch, not in a loop."""

    def __init__(self, particles: int = 1):
        self.elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=particles)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        return self.elbo.differentiable_loss(model, _summed(guide), *args, **kwargs)

    def loss(self, model, guide, *args, **kwargs) -> float:
        return self.elbo.loss(model, _summed(guide), *args, **kwargs)


def _summed(guide):
    """The guide with its discrete site (the label) enumerated in parallel, unexpanded: y has shape
    (10, 1, 10) and broadcasts against the batch."""
    return config_enumerate(guide, "parallel", expand=False)


class LabelsWeighted:
    """The same bound U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)) with L(x, y) scored by any ELBO
    ``estimator`` (Trace_ELBO: KL sampled; TraceMeanField_ELBO: KL in closed form): each image is
    paired with every label y = c (observed) that q(c|x) does not rule out, the pairs scored in one
    pass, each pair's terms weighted by q(c|x) (``poutine.scale``); the entropy by hand. A pair with
    q(c|x) < NEGLIGIBLE_WEIGHT is left out: its share of the bound is below float32's resolution
    of it, and a trained classifier gives most pairs weights under 1e-30, whose products in the
    backward pass are denormal floats (5 s a gradient instead of 0.08 on this CPU). ``LabelsSummed`` is the
    Trace_ELBO case by enumeration; this form lets the evaluator compare the two KL estimators on a
    semi-supervised model without reading test labels. Gradients reach the classifier through the
    weights and the entropy, as they do in training."""

    def __init__(self, estimator: ELBO, classify, num_classes: int):
        self.estimator, self.classify, self.num_classes = estimator, classify, num_classes

    def differentiable_loss(self, model, guide, x, y=None, **kwargs) -> torch.Tensor:
        q_y = self.classify(x)
        image, label = torch.nonzero(q_y.probs >= NEGLIGIBLE_WEIGHT, as_tuple=True)
        weight = q_y.probs[image, label]
        every_label = one_hot(label, self.num_classes).to(x.dtype)
        bound_terms = self.estimator.differentiable_loss(
            poutine.scale(model, scale=weight), poutine.scale(guide, scale=weight), x[image], every_label, **kwargs
        )
        return bound_terms - q_y.entropy().sum()

    def loss(self, model, guide, x, y=None, **kwargs) -> float:
        with torch.no_grad():
            return self.differentiable_loss(model, guide, x, **kwargs).item()

    def loss_and_grads(self, model, guide, x, y=None, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, x, **kwargs)
        loss.backward()
        return loss.item()


class SemiSupervised:
    """Kingma et al. (2014), M2: each step takes a batch u of unlabeled images (the epoch's) and a
    batch l of labeled ones (drawn afresh from the few kept, so they are recycled), and minimizes

        loss = -1/|u| sum_u U(x) - 1/|l| sum_l [ L(x, y) + alpha log q(y | x) ],

    U and L as in ``LabelsSummed`` (or their importance-weighted bounds: ``bounds``, the unlabeled and
    the labeled one). The classifier q(y|x) enters U only through unlabeled images, so
    without the alpha term it would never see a label: Kingma et al.'s auxiliary term, alpha =
    ``--classifier-weight``. It is a second loss added to the ELBOs' (as in Pyro's ss-vae example),
    not a ``pyro.factor`` in the model, because it is no density of the generative model: as a factor
    it would enter the log p(x, y) the evaluator scores. Taking each part as a mean over its own batch
    gives the few labeled images the weight of a whole batch, as Pyro's example and later
    re-implementations do (Kingma et al. sum over the data set).

    With ``shards`` processes (distributed.py), each takes 1/shards of both batches and divides its
    sums by the whole batches' sizes, so that the processes' gradients sum to the means above (exactly
    when the unlabeled batch divides evenly; the epoch's last batch may not)."""

    def __init__(self, labeled: Split, classify, classifier_weight: float, batch_size: int, binary: bool,
                 num_classes: int, shards: int = 1, bounds: tuple | None = None):  # fmt: skip
        self.labeled, self.classify, self.alpha, self.num_classes = labeled, classify, classifier_weight, num_classes
        self.labeled_batch = math.ceil(min(batch_size, len(labeled)) / shards)
        self.binary, self.shards = binary, shards
        self.unlabeled_bound, self.labeled_bound = bounds or (LabelsSummed(), Trace_ELBO())

    def labeled_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh batch of labeled images (binarized anew, like the epoch's images), one-hot labels."""
        index = torch.randperm(len(self.labeled), device=self.labeled.labels.device)[: self.labeled_batch]
        images = self.labeled.batch(index)
        labels = one_hot(self.labeled.labels[index], self.num_classes).to(images.device)
        return (binarize(images) if self.binary else images), labels

    def loss_and_grads(self, model, guide, x, y=None, **kwargs) -> float:
        """Steps on the whole loss; returns the unlabeled batch's -sum U(x), what the log reports."""
        x_labeled, y_labeled = self.labeled_images()
        unlabeled = self.unlabeled_bound.differentiable_loss(model, guide, x, **kwargs)
        labeled = self.labeled_bound.differentiable_loss(model, guide, x_labeled, y_labeled, **kwargs)
        classification = -self.classify(x_labeled).log_prob(y_labeled).sum()
        labeled_images = x_labeled.shape[0] * self.shards
        loss = unlabeled / (x.shape[0] * self.shards) + (labeled + self.alpha * classification) / labeled_images
        loss.backward()
        return unlabeled.item()

    def loss(self, model, guide, x, y=None, **kwargs) -> float:
        return self.unlabeled_bound.loss(model, guide, x, **kwargs)


@dataclass
class Objective:
    """A Pyro loss and the KL weight of each global step (1-based, counted across epochs and resumes)."""

    loss: ELBO | IWAE | SemiSupervised
    beta: float = 1.0
    warmup_steps: int = 0
    baseline_steps: int = 0  # image completion: steps that train the baseline alone, first
    baseline: torch.nn.Module | None = None  # image completion: its baseline_nll(x) = -log p_b(x_hidden | x_visible)

    def kl_scale(self, step: int) -> float:
        if self.warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, step / self.warmup_steps)

    def loss_and_grads(self, model, guide, step: int, *args) -> float:
        if step <= self.baseline_steps:
            return self._baseline_step(args[0])
        return self.loss.loss_and_grads(model, guide, *args, kl_scale=self.kl_scale(step))

    def _baseline_step(self, x: torch.Tensor) -> float:
        """The baseline's summed -log p_b(x_hidden | x_visible); only its weights get gradients. The
        baseline joins Pyro's parameter store under the name the model gives it, so that
        ``pyro.infer.SVI``, which steps the parameters a loss touched through Pyro, steps it too."""
        pyro.module("completion", self.baseline)
        loss = self.baseline.baseline_nll(x).sum()
        loss.backward()
        return loss.item()


def make_objective(config: Config, steps_per_epoch: int = 1, labeled: Split | None = None, classify=None,
                   baseline=None, shards: int = 1) -> Objective:  # fmt: skip
    """The objective ``config`` names; a semi-supervised one needs the ``labeled`` images and the
    VAE's ``classify``, image completion its ``baseline`` (``completion.Completion``); ``shards`` processes share
    each batch."""
    objective = _objective(config, steps_per_epoch, labeled, classify, shards)
    if config.visible_quadrants is not None:
        objective.baseline_steps, objective.baseline = config.baseline_epochs * steps_per_epoch, baseline
    return objective


def _objective(config: Config, steps_per_epoch: int, labeled: Split | None, classify, shards: int = 1) -> Objective:
    warmup = config.kl_warmup * steps_per_epoch
    if config.labels is not None:
        binary = likelihood_for(config).data == "binarized"
        loss = SemiSupervised(labeled, classify, config.classifier_weight, config.batch_size, binary,
                              config.num_classes, shards, _semi_supervised_bounds(config))  # fmt: skip
        return Objective(loss, config.beta, warmup)
    if config.objective == "iwae":
        return Objective(IWAE(config.particles), config.beta, warmup)
    if config.free_bits > 0:
        return Objective(FreeBits(config.free_bits, config.elbo == "analytic", config.particles), config.beta, warmup)
    return Objective(elbo_estimator(config.elbo, config.particles), config.beta, warmup)


def elbo_estimator(kind: str, particles: int = 1) -> ELBO:
    """``--elbo kind`` averaging ``particles`` draws per image in one vectorized pass."""
    if particles == 1:
        return ELBO_ESTIMATORS[kind]()
    return ELBO_ESTIMATORS[kind](num_particles=particles, vectorize_particles=True, max_plate_nesting=1)


def _semi_supervised_bounds(config: Config) -> tuple:
    """(unlabeled, labeled) bounds of M2: ELBOs (y summed out by enumeration), or importance-weighted."""
    if config.objective == "iwae":
        return LabelsImportanceWeighted(config.particles, config.num_classes), IWAE(config.particles)
    return LabelsSummed(config.particles), elbo_estimator("trace", config.particles)


def test_elbo_estimator(config: Config) -> ELBO:
    """The ELBO the training log reports on the test split, whatever the training objective: for a
    semi-supervised run, the bound with the labels hidden and summed out."""
    if config.labels is not None:
        return LabelsSummed()
    return ELBO_ESTIMATORS[config.elbo]()
