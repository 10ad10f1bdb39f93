"""Honest numbers for a trained run, on the test split, in nats per image: ``evaluate`` runs them all.

- ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)), with the expectation averaged over the same k
  draws the IWAE bound uses, and the KL in closed form (by hand, and Pyro's analytic term), and the
  importance-weighted bound: ``bounds.py``.
- The Monte-Carlo spread of one batch's loss under Trace_ELBO (KL sampled) and TraceMeanField_ELBO
  (KL in closed form), and the total variance of their gradients: ``noise.py``.
- FID in the digit classifier's feature space: ``fid.py``.
- Active units (posterior collapse) and the figures of conditional, semi-supervised and completion runs:
  here.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import pyro
import torch

from .bounds import bits_per_dim, dequantize, images_per_batch, split_bounds
from .checkpoint import weights_fingerprint
from .classifier import classifier_available
from .codecs import CODECS, split_bits_per_dim
from .completion import CompletionCVAE, grey_target_losses, mean_baseline_nll
from .data import Split, load_data
from .distributed import SINGLE, World
from .errors import PyroVAEError
from .fid import frechet_distance
from .inference import classification_accuracy
from .m2 import SemiSupervisedVAE
from .model import VAE
from .noise import estimator_noise, estimators
from .runs import Run

@dataclass
class Evaluation:
    elbo: float
    reconstruction: float
    kl: float  # the KL the ELBO uses: closed form by hand, or Monte Carlo over the k draws (kl_estimator says which)
    kl_pyro: float | None  # Pyro's closed form; None where none applies
    kl_difference: float | None
    kl_estimator: str
    log_likelihood: float
    log_likelihood_stderr: float
    k: int
    n_images: int
    elbo_spread_trace: float
    elbo_spread_analytic: float
    conditional: bool
    likelihood: str
    bits_per_dim: float  # bernoulli: of the binarized image; discretized-logistic: of the 8-bit image;
    # continuous: a bound for the 8-bit image, through dequantization; completion: per hidden subpixel
    gradient_variance_trace: float  # total variance of the per-image ELBO gradient, Trace_ELBO
    gradient_variance_trace_stderr: float
    gradient_variance_analytic: float  # the same under TraceMeanField_ELBO
    gradient_variance_analytic_stderr: float
    active_units: int = 0  # of z, z_1 in a hierarchy (Burda et al.: Cov_x(E_q[z_u|x]) > 0.01)
    active_units_groups: list[int] | None = None  # of z_1, ..., z_N in a hierarchy (None: one group)
    log_likelihood_dequantized: float | None = None
    png_bits_per_dim: float | None = None  # 8-bit data: PNG's bits/dim of the same test images (codecs.py)
    webp_bits_per_dim: float | None = None  # 8-bit data: lossless WebP's
    fid: float | None = None  # Frechet distance in the classifier's feature space, 10,000 samples
    classifier_sha256: str | None = None  # the judging classifier's weights file (FID, digit accuracy)
    not_measured: dict | None = None  # figure -> why it has no number for this run (no labels, ...)
    digit_accuracy: float | None = None
    classification_accuracy: float | None = None  # semi-supervised: argmax q(y|x) against the test labels
    visible_quadrants: int | None = None  # image completion: log_likelihood is then log p(x_hidden | x_visible)
    cvae_nll: float | None = None  # image completion: -log_likelihood, the CVAE's -log p(x_hidden | x_visible)
    baseline_nll: float | None = None  # image completion: the deterministic baseline's, exact
    cvae_neg_elbo_grey: float | None = None  # image completion, Pyro's tutorial's figure: Trace_ELBO(10 particles), grey targets
    baseline_nll_grey: float | None = None  # image completion: the baseline's cross-entropy against grey targets
    seconds: float | None = None
    seed: int = 0
    weights_sha256: str | None = None  # checkpoint.weights_fingerprint of the networks scored

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def active_units(vae: VAE, images: Split, threshold: float = 0.01) -> list[int]:
    """Burda et al. (2015): latent dimension u is active if A_u = Cov_x(E_q[u | x]) > 0.01 over the
    test set. Counted for every group, z_1 (the latent the decoder reads) first, each group's mean
    taken given the means above it (``VAE.posterior_means``)."""
    means = None
    for x, labels in images.chunks(1000):
        y = vae.one_hot(labels.to(x.device)) if vae.reads_labels else None
        top_first = vae.posterior_means(x, y)
        means = [[] for _ in top_first] if means is None else means
        for group, mean in enumerate(reversed(top_first)):
            means[group].append(mean)
    return [int((torch.cat(group_means).var(dim=0) > threshold).sum()) for group_means in means]


def completion_figures(run: Run, bounds: torch.Tensor, test: Split, data_dir: str | None = None) -> dict:
    """The CVAE's -log p(x_hidden | x_visible) bound beside its baseline's exact one, and for a
    Bernoulli run Pyro's tutorial's figures on the grey images (``completion.grey_target_losses``)."""
    figures = {"visible_quadrants": run.config.visible_quadrants, "cvae_nll": -bounds.mean().item(),
               "baseline_nll": mean_baseline_nll(run.vae, test)}  # fmt: skip
    if run.vae.observation.data == "binarized":
        grey = load_data(run.config, run.device, binarize=False, data_dir=data_dir).test
        figures["cvae_neg_elbo_grey"], figures["baseline_nll_grey"] = grey_target_losses(run.vae, grey)
    return figures


def judged_figures(run: Run, classifier, seed: int = 0, data_dir: str | None = None, fid: bool = True) -> dict:
    """The figures a judging ``classifier`` gives: the FID of the run's samples (unless ``fid`` is
    False) and, for a conditional run, the share of ``sample --digit`` draws of the class asked for;
    with the judge's ``classifier_sha256``. They depend on the judge, the bounds do not: a saved
    evaluation of the same weights can have these alone measured again by another judge."""
    figures = {}
    if fid:
        grey = load_data(run.config, run.device, binarize=False, data_dir=data_dir).test
        figures["fid"] = frechet_distance(run.vae, classifier, grey, seed=seed)
    if run.config.conditional:
        from .classifier import digit_accuracy

        figures["digit_accuracy"] = sum(digit_accuracy(classifier, run.vae)) / run.config.num_classes
    if figures:
        figures["classifier_sha256"] = getattr(classifier, "sha256", None)
    return figures


def evaluate(
    run: Run, k: int = 1000, seed: int = 0, data_dir: str | None = None, classifier=None, batch_size: int | None = None,
    world: World = SINGLE, fid: bool = True,
) -> Evaluation | None:
    """Every figure above for ``run`` on the 10,000 test images (binarized with the fixed seed for
    a Bernoulli run). A conditional run is scored as log p(x|y) with the true labels, and
    ``classifier`` (if given) measures the digit accuracy of its samples and, unless ``fid`` is False,
    the FID of any run's samples. An image-completion run is
    scored as log p(x_hidden | x_visible): the same IWAE bound, the recognition network q(z | x, c)
    the proposal, p(z | c) p(x_hidden | z, c) the joint; its baseline exactly. A continuous likelihood
    is also scored on the dequantized 8-bit test images, giving bits per dimension; the discretized
    logistic's log p(x) is already the 8-bit image's, so its bits per dimension come from it directly.

    Under torchrun (``world``) the processes share the IWAE passes, each image's draws keyed by the
    seed and the image's chunk, so the bound is the one process's; rank 0 then measures the rest
    (one batch's spreads, active units, FID) and returns the Evaluation, the others None."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise PyroVAEError(f"--k must be a positive integer (the number of importance samples), got {k!r}")
    started = time.perf_counter()
    vae = run.vae.eval()
    discrete = vae.observation.discrete  # its log p(x) is of the stored values: no dequantization
    data = load_data(run.config, run.device, data_dir=data_dir)
    test = data.test
    batch_size = batch_size or images_per_batch(k, run.device, run.config.network)
    # A semi-supervised model scores log p(x) with the labels hidden: y is drawn from q(y|x) with z;
    # a plain VAE ignores them.
    scored_labels = True if vae.reads_labels else None
    bounds, reconstruction, kl, kl_pyro = split_bounds(vae, test, scored_labels, k, batch_size, seed, world)
    figures = {}
    # Bits per dimension divide by the subpixels scored: for image completion, the hidden ones.
    pixels = vae.scored_pixels
    if discrete:
        figures["bits_per_dim"] = bits_per_dim(bounds.mean().item(), dequantized=False, pixels=pixels)
    else:
        dequantized = split_bounds(vae, dequantize(test, seed), scored_labels, k, batch_size, seed, world, "dequantized")[0]
        figures["log_likelihood_dequantized"] = dequantized.mean().item()
        figures["bits_per_dim"] = bits_per_dim(dequantized.mean().item(), dequantized=True, pixels=pixels)
    if not world.main:
        return None
    if vae.observation.data != "binarized" and pixels == run.config.pixels:  # the codecs a user has, same images
        for codec in CODECS:
            figures[f"{codec}_bits_per_dim"] = split_bits_per_dim(test, run.config.image_shape, codec)
    pyro.set_rng_seed(seed)
    n = len(test)
    first = torch.arange(min(128, n), device=test.labels.device)
    x = test.batch(first)
    # The test labels condition a conditional VAE; a semi-supervised one sums them out (``estimators``).
    y = vae.one_hot(test.labels[first].to(x.device)) if vae.reads_labels else None
    for name, estimator in estimators(vae).items():
        spread, variance, stderr = estimator_noise(vae.model, vae.guide, vae.parameters(), x, y, estimator)
        figures[f"elbo_spread_{name}"], figures[f"gradient_variance_{name}"] = spread, variance
        figures[f"gradient_variance_{name}_stderr"] = stderr
    groups = active_units(vae, test)
    figures["active_units"], figures["active_units_groups"] = groups[0], groups if len(groups) > 1 else None
    if isinstance(vae, CompletionCVAE):
        figures.update(completion_figures(run, bounds, test, data_dir))
    if not vae.draws_from_prior:  # no prior p(z) to sample from: no FID, no digit accuracy
        classifier = None
    if classifier is not None:
        figures.update(judged_figures(run, classifier, seed, data_dir, fid))
    reason = classifier_available(run.config)
    if classifier is None and reason and vae.draws_from_prior:
        figures["not_measured"] = {"fid": reason, "digit_accuracy": reason}
    if isinstance(vae, SemiSupervisedVAE):
        figures["classification_accuracy"] = classification_accuracy(vae, test)
    return Evaluation(
        elbo=(reconstruction - kl) / n,
        reconstruction=reconstruction / n,
        kl=kl / n,
        kl_pyro=None if kl_pyro is None else kl_pyro / n,
        kl_difference=None if kl_pyro is None else (kl - kl_pyro) / n,
        kl_estimator="closed form" if kl_pyro is not None else "monte carlo",
        log_likelihood=bounds.mean().item(),
        log_likelihood_stderr=(bounds.std() / math.sqrt(n)).item(),
        k=k,
        n_images=n,
        conditional=run.config.conditional,
        likelihood=run.config.likelihood,
        seconds=time.perf_counter() - started,
        seed=seed,
        weights_sha256=weights_fingerprint(vae),
        **figures,
    )
