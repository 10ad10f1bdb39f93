"""Honest numbers for a trained run, on the test split, in nats per image.

- ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)), with the expectation averaged over the same k
  draws the IWAE bound uses, and the KL in closed form (by hand, and Pyro's analytic term).
- The importance-weighted bound (Burda et al. 2015), with z_1..z_k ~ q(z|x):

      log p(x) >= L_k(x) = log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   L_1 = ELBO <= L_k <= log p(x)

  so k=1 gives a one-sample ELBO estimate and a larger k a tighter bound.
- The Monte-Carlo spread of one batch's loss under Trace_ELBO (KL sampled) and TraceMeanField_ELBO
  (KL in closed form), and the total variance of their gradients, which is what SGD feels.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from .data import Split, load_data
from .distributed import SINGLE, World, stream_seed
from .checkpoint import weights_fingerprint
from .classifier import classifier_available
from .errors import PyroVAEError
from .completion import grey_target_losses, mean_baseline_nll
from .inference import classification_accuracy
from .likelihoods import is_discrete
from .model import VAE
from .objectives import LabelsWeighted, particle_log_weights
from .runs import Run

# Decoder rows (image, draw) at once. On CPU 4096 rows keep the 13 MB of logits near the cores'
# caches: 10 us a row against 24 at 32768 here (bench/kernels.py); a GPU wants big launches.
ROWS_PER_CHUNK = 4096
GPU_ROWS_PER_CHUNK = 65536
# A conv decoder row holds some 30k values of feature maps: 256 rows ran 9,980 rows a second here
# against 5,331 at 4,096 (the conv VAE of results/conv-vae, IWAE weights of 256 test images, k=64).
CONV_ROWS_PER_CHUNK = 256
# Gradient-variance parameters centred at a time in float64: R x 4,096 x 8 bytes, 3.3 MB for R = 100,
# stays in the cache through the passes over it. Both estimators of the default VAE: 5.5 s, of which
# the 200 backward passes are 4.4; 8.4 s at 65,536 a block; 17 s for the whole (R, P) matrix at once.
GRADIENT_BLOCK = 4096


@dataclass
class Evaluation:
    elbo: float
    reconstruction: float
    kl_analytic: float  # the KL the ELBO uses: closed form by hand, or Monte Carlo (kl_estimator)
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
    active_units: int = 0  # of z (Burda et al.: Cov_x(E_q[z_u|x]) > 0.01)
    active_units_top: int | None = None  # of z2, with two stochastic layers
    log_likelihood_dequantized: float | None = None
    fid: float | None = None  # Frechet distance in the classifier's feature space, 10,000 samples
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
def importance_weights(vae: VAE, x: torch.Tensor, y, k: int):
    """log w_i = log p(x, z_i) - log q(z_i|x) for k draws per image, shape (n, k), from Pyro's traces
    (``objectives.particle_log_weights``), and the reconstruction terms log p(x|z_i), same shape.
    Draws are taken in chunks of at most
    ROWS_PER_CHUNK decoder rows (GPU_ROWS_PER_CHUNK on a GPU), so k=5000 fits in memory."""
    draws_per_chunk = max(1, rows_per_chunk(x.device, vae.config.network) // x.shape[0])
    log_weights, reconstructions = [], []
    # Validation would check every site's arguments and support in each of 12,000 chunks (5% of
    # the time at k=5000); a network gone wrong still shows, as a non-finite bound.
    with pyro.validation_enabled(False), prior_held(vae):
        for start in range(0, k, draws_per_chunk):
            log_w, site_log_probs = particle_log_weights(vae.model, vae.guide, min(draws_per_chunk, k - start), x, y)
            log_weights.append(log_w.T)
            reconstructions.append(site_log_probs["x"].expand(log_w.shape).T)
    return torch.cat(log_weights, dim=1), torch.cat(reconstructions, dim=1)


def prior_held(vae: VAE):
    """A VampPrior's mixture encoded once for the chunks that follow (``VampPrior.held``)."""
    held = getattr(vae.latent_prior, "held", None)
    return held(vae._encode_top) if held is not None else contextlib.nullcontext()


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """L_k per image: logsumexp_i log w_i - log k."""
    return torch.logsumexp(log_weights, dim=1) - math.log(log_weights.shape[1])


@torch.no_grad()
def pyro_analytic_kl(vae: VAE, x: torch.Tensor, y) -> float:
    """Pyro's closed-form KL, summed over the batch: TraceMeanField_ELBO's loss with the observed
    site hidden is exactly sum_n KL(q(z|x_n) || p(z))."""
    return TraceMeanField_ELBO().loss(poutine.block(vae.model, hide=["x"]), vae.guide, x, y)


def estimators(vae: VAE) -> dict:
    """The two ELBO estimators compared: Trace_ELBO (KL sampled) and TraceMeanField_ELBO (KL in
    closed form). A semi-supervised model is scored as it is trained on unlabeled images, y summed
    out under its own q(y|x) (``LabelsWeighted``): the test labels stay unread."""
    pair = {"trace": Trace_ELBO(), "analytic": TraceMeanField_ELBO()}
    if vae.classifier:
        return {name: LabelsWeighted(estimator, vae.classify, vae.config.num_classes) for name, estimator in pair.items()}
    return pair


def estimator_noise(model, guide, parameters, x: torch.Tensor, y, estimator, repeats: int = 100):
    """An ELBO estimator's noise over ``repeats`` draws on one fixed batch: the standard deviation of
    its loss (nats per image), and the total variance of the per-image gradient over ``parameters``
    (all the networks') with its standard error:

        V = 1/(R-1) sum_r ||g_r - mean(g)||^2,  se(V) = std_r(R/(R-1) ||g_r - mean(g)||^2) / sqrt(R)

    The variance, not the spread of the loss's value, is what an estimator's noise costs SGD. Both
    come from the same draws: one forward pass each instead of a second set without gradients."""
    parameters = [parameter for parameter in parameters if parameter.requires_grad]
    gradients = torch.empty(repeats, sum(parameter.numel() for parameter in parameters), device=x.device)
    losses = torch.empty(repeats, dtype=torch.float64)
    with torch.enable_grad():
        for draw in range(repeats):
            for parameter in parameters:
                parameter.grad = None
            losses[draw] = estimator.loss_and_grads(model, guide, x, y)
            flat = [torch.zeros_like(p).reshape(-1) if p.grad is None else p.grad.reshape(-1) for p in parameters]
            torch.cat(flat, out=gradients[draw]).div_(x.shape[0])
    for parameter in parameters:
        parameter.grad = None
    # Centred in float64 a block of parameters at a time: the whole (R, P) matrix in float64, and
    # its centred square, would be two more copies of it (1.7 GB for the default VAE), and allocating
    # them took longer than the R backward passes.
    squared_norms = torch.zeros(repeats, dtype=torch.float64, device=x.device)
    for block in gradients.split(GRADIENT_BLOCK, dim=1):
        block = block.double()
        squared_norms += (block - block.mean(0)).square().sum(1)
    deviations = squared_norms * repeats / (repeats - 1)
    spread = (losses / x.shape[0]).std().item()
    return spread, deviations.mean().item(), (deviations.std() / math.sqrt(repeats)).item()


@torch.no_grad()
def active_units(vae: VAE, images: Split, threshold: float = 0.01) -> list[int]:
    """Burda et al. (2015): latent dimension u is active if A_u = Cov_x(E_q[u | x]) > 0.01 over the
    test set. Counted for z (the latent the decoder reads) and, with two layers, for the top z2
    through q(z2 | z1 = E[z1|x])."""
    means = [[] for _ in range(1 + len(vae.upward))]
    for x, labels in images.chunks(1000):
        if vae.classifier:
            z_mean = semi_supervised_posterior_mean(vae, x)
        else:
            z_mean = vae.posterior_mean(x, vae.one_hot(labels.to(x.device)) if vae.config.conditional else None)
        means[0].append(z_mean)
        for index, layer in enumerate(vae.upward, start=1):
            means[index].append(layer(z_mean).mean)
    return [int((torch.cat(layer_means).var(dim=0) > threshold).sum()) for layer_means in means]


@torch.no_grad()
def semi_supervised_posterior_mean(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """E_q[z | x] = sum_y q(y|x) E_q[z | x, y]: the mean of the model's own q(z|x) with the label
    summed out, one encoder pass over the (classes * n) pairs."""
    classes, n = vae.config.num_classes, x.shape[0]
    labels = torch.arange(classes, device=x.device).repeat_interleave(n)
    z_means = vae.posterior_mean(x.repeat(classes, *[1] * (x.dim() - 1)), vae.one_hot(labels)).reshape(classes, n, -1)
    return torch.einsum("nc,cnd->nd", vae.classify(x).probs, z_means)


class ClassifierFeatures(torch.nn.Module):
    """The project's CNN classifier without its last layer: 3,136 features per image, the feature
    space in which ``frechet_distance`` compares samples with test images."""

    def __init__(self, classifier: torch.nn.Module):
        super().__init__()
        self.body = classifier[:-1]
        pixels = math.prod(classifier[0].unflattened_size)
        self.num_features = self.body(torch.zeros(1, pixels, device=_device_of(classifier))).shape[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images.reshape(images.shape[0], -1).float())


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def feature_moments(features) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and the unbiased covariance of an iterable of feature chunks (n_i, d), accumulated
    in float64 one chunk at a time."""
    count, total, outer = 0, 0.0, 0.0
    for chunk in features:
        chunk = chunk.double()
        count, total, outer = count + chunk.shape[0], total + chunk.sum(0), outer + chunk.T @ chunk
    mean = total / count
    return mean, (outer - count * torch.outer(mean, mean)) / (count - 1)


def frechet_distance_of_moments(mean_1, covariance_1, mean_2, covariance_2) -> float:
    """d^2 = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2)).

    S_1 S_2 has the eigenvalues of the symmetric S_1^(1/2) S_2 S_1^(1/2) (the two are similar), so
    tr((S_1 S_2)^(1/2)) = sum_i sqrt(lambda_i) takes two symmetric eigensolvers instead of the general
    one FID code usually calls (torchmetrics: eigvals(S_1 @ S_2)), 7.7 s against 10.8 s for 3,136
    features on a 2-core Intel Xeon. Eigenvalues that rounding makes slightly negative count as zero."""
    values, vectors = torch.linalg.eigh(covariance_1)
    root = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    middle = torch.linalg.eigvalsh(root @ covariance_2 @ root)
    trace_of_root = middle.clamp(min=0).sqrt().sum()
    distance = (mean_1 - mean_2).square().sum() + covariance_1.trace() + covariance_2.trace() - 2 * trace_of_root
    return distance.item()


def frechet_distance_of_features(features_1: torch.Tensor, features_2: torch.Tensor) -> float:
    """The same d^2 from the features themselves, (n_1, d) and (n_2, d), for sets smaller than d.

    With the centred features A and B, S_1 = A^T A / (n_1 - 1) and S_2 = B^T B / (n_2 - 1), so S_1 S_2
    has the nonzero eigenvalues of (A B^T)(A B^T)^T and tr((S_1 S_2)^(1/2)) = ||A B^T||_* /
    sqrt((n_1 - 1)(n_2 - 1)), the sum of the singular values of the n_1 x n_2 matrix A B^T; the traces
    are ||A||_F^2 / (n_1 - 1) and ||B||_F^2 / (n_2 - 1). For 2,000 images of 3,136 features: 2.4 s
    against 13 s for the moments and two 3,136 x 3,136 eigensolvers (2-core AMD EPYC)."""
    centred_1, centred_2 = features_1.double(), features_2.double()
    mean_1, mean_2 = centred_1.mean(0), centred_2.mean(0)
    centred_1, centred_2 = centred_1 - mean_1, centred_2 - mean_2
    dof_1, dof_2 = features_1.shape[0] - 1, features_2.shape[0] - 1
    trace_of_root = torch.linalg.svdvals(centred_1 @ centred_2.T).sum() / math.sqrt(dof_1 * dof_2)
    traces = centred_1.square().sum() / dof_1 + centred_2.square().sum() / dof_2
    return ((mean_1 - mean_2).square().sum() + traces - 2 * trace_of_root).item()


@torch.no_grad()
def frechet_distance(vae: VAE, classifier, test_images: Split, n: int = 10_000, seed: int = 0) -> float:
    """The Frechet distance (``frechet_distance_of_moments``, or ``frechet_distance_of_features`` for
    fewer test images than features) between the classifier features of n
    prior samples (decoder means; as many as the test images where they are fewer than n, since FID's
    bias depends on the sample sizes) and of the grey test images: FID with the project's classifier
    as the feature extractor, since the Inception network of image FID knows nothing of 28x28 digits."""
    from .classifier import flat_images
    from .sampling import sample_images

    features = ClassifierFeatures(classifier)
    device = _device_of(classifier)
    # generators: each chunk's features are folded into the moments and dropped (not 2 x 125 MB kept)
    real = (features(chunk.to(device)) for chunk, _ in test_images.chunks(1000))
    samples = sample_images(vae, n=min(n, len(test_images)), seed=seed)[0]
    fake = (features(flat_images(chunk).to(device)) for chunk in samples.split(1000))
    if len(test_images) < features.num_features:  # both sets smaller than the feature space
        return frechet_distance_of_features(torch.cat(list(real)), torch.cat(list(fake)))
    return frechet_distance_of_moments(*feature_moments(real), *feature_moments(fake))


def dequantize(grey: torch.Tensor | Split, seed: int) -> torch.Tensor | Split:
    """Uniform dequantization of 8-bit pixels: u = (x + v) / 256, x in {0..255}, v ~ U(0, 1).

    For a density p on [0, 1]^D, log P(x) >= E_v[log p(u)] - D log 256, so a continuous
    likelihood's bound becomes a bound on the probability of the 8-bit image itself. A split comes
    back as a float split, the noise drawn over it whole in order (small splits: the test split)."""
    if isinstance(grey, Split):
        return Split(dequantize(grey.floats(), seed), grey.labels)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(grey.shape, generator=generator).to(grey.device)
    return (torch.round(grey * 255) + noise) / 256


def bits_per_dim(log_likelihood: float, dequantized: bool, pixels: int) -> float:
    """-log2 P(x) / D over the D = C*H*W subpixels; with dequantization, the 8-bit image's bound:
    8 - E[log p(u)] / (D ln 2)."""
    log_probability = log_likelihood - (pixels * math.log(256) if dequantized else 0.0)
    return -log_probability / (pixels * math.log(2))


def split_bounds(vae: VAE, images: Split | torch.Tensor, labels: torch.Tensor | bool | None, k: int, batch_size: int,
                 seed: int | None = None, world: World = SINGLE, stream: str = "test"):  # fmt: skip
    """Per-image IWAE bounds over a split, and the summed reconstruction and KL: the KL in closed
    form by hand and by Pyro where the pieces have one, else (both None) the Monte-Carlo
    E_q[log q(z|x) - log p(z)] over the same draws. ``labels``: None scores without labels (log p(x)),
    else the split's own (a float tensor of images comes with its labels tensor).

    With a ``seed``, each chunk of ``batch_size`` images draws from a stream keyed by (seed,
    ``stream``, its first image's index), so the numbers do not depend on who scores which chunk:
    with several processes each scores every ``world.size``-th chunk, and the chunks' results are
    gathered and added up in order, the same sums one process makes. Without one, the draws go on
    from the global generator."""
    if isinstance(images, torch.Tensor):
        images = Split(images, labels if isinstance(labels, torch.Tensor) else torch.zeros(len(images), dtype=torch.int64))
    chunks = images.index_chunks(batch_size)
    scored = {}
    for number in range(world.rank, len(chunks), world.size):
        if seed is not None:
            torch.manual_seed(stream_seed(seed, stream, int(chunks[number][0])))
        scored[number] = _chunk_bounds(vae, images, chunks[number], labels is not None, k)
    if world.distributed:
        for part in world.gather(scored):
            scored.update(part)
    bounds, reconstruction, kl_mc, kl, kl_pyro = [], 0.0, 0.0, 0.0, 0.0
    for number in range(len(chunks)):
        chunk_bounds, chunk_reconstruction, chunk_kl_mc, closed_form, closed_form_pyro = scored[number]
        bounds.append(chunk_bounds)
        reconstruction += chunk_reconstruction
        kl_mc += chunk_kl_mc
        if closed_form is None:
            kl = kl_pyro = None
        elif kl is not None:
            kl += closed_form
            kl_pyro += closed_form_pyro
    return torch.cat(bounds).to(images.target), reconstruction, (kl_mc if kl is None else kl), kl_pyro


def _chunk_bounds(vae: VAE, images: Split, index: torch.Tensor, labelled: bool, k: int):
    """One chunk's IWAE bounds (on the CPU, to be gathered), summed reconstruction, Monte-Carlo KL
    and closed-form KL by hand and by Pyro (None, None where there is none)."""
    x, chunk_labels = images.batch(index), images.labels[index.to(images.labels.device)]
    y = vae.one_hot(chunk_labels.to(x.device)) if labelled else None
    log_weights, reconstructions = importance_weights(vae, x, y, k)
    closed_form = vae.closed_form_kl(x, y)
    kl = kl_pyro = None
    if closed_form is not None:
        kl, kl_pyro = closed_form.sum().item(), pyro_analytic_kl(vae, x, y)
    return (iwae_bound(log_weights).cpu(), reconstructions.mean(dim=1).sum().item(),
            (reconstructions - log_weights).mean(dim=1).sum().item(), kl, kl_pyro)  # fmt: skip


def images_per_batch(k: int, device: torch.device, network: str = "mlp") -> int:
    """Test images per batch: enough draws per chunk (32, or k if fewer) that running the encoder
    once per chunk costs at most 1/32 of the decoder, and at most 500 images."""
    return max(1, min(500, rows_per_chunk(device, network) // min(k, 32)))


def rows_per_chunk(device: torch.device, network: str = "mlp") -> int:
    if device.type != "cpu":
        return GPU_ROWS_PER_CHUNK
    return CONV_ROWS_PER_CHUNK if network == "conv" else ROWS_PER_CHUNK


def evaluate(
    run: Run, k: int = 1000, seed: int = 0, data_dir: str | None = None, classifier=None, batch_size: int | None = None,
    world: World = SINGLE,
) -> Evaluation | None:
    """Every figure above for ``run`` on the 10,000 test images (binarized with the fixed seed for
    a Bernoulli run). A conditional run is scored as log p(x|y) with the true labels, and
    ``classifier`` (if given) measures the digit accuracy of its samples. An image-completion run is
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
    discrete = is_discrete(run.config)  # its log p(x) is of the stored values: no dequantization
    data = load_data(run.config, run.device, data_dir=data_dir)
    test = data.test
    batch_size = batch_size or images_per_batch(k, run.device, run.config.network)
    # A semi-supervised model scores log p(x) with the labels hidden: y is drawn from q(y|x) with z;
    # a plain VAE ignores them.
    scored_labels = True if run.config.conditional and not vae.classifier else None
    bounds, reconstruction, kl, kl_pyro = split_bounds(vae, test, scored_labels, k, batch_size, seed, world)
    figures = {}
    # Bits per dimension divide by the subpixels scored: for image completion, the hidden ones.
    pixels = int(vae.completion[0].hidden.sum().item()) if vae.completion else run.config.pixels
    if discrete:
        figures["bits_per_dim"] = bits_per_dim(bounds.mean().item(), dequantized=False, pixels=pixels)
    else:
        dequantized = split_bounds(vae, dequantize(test, seed), scored_labels, k, batch_size, seed, world, "dequantized")[0]
        figures["log_likelihood_dequantized"] = dequantized.mean().item()
        figures["bits_per_dim"] = bits_per_dim(dequantized.mean().item(), dequantized=True, pixels=pixels)
    if not world.main:
        return None
    pyro.set_rng_seed(seed)
    n = len(test)
    first = torch.arange(min(128, n), device=test.labels.device)
    x = test.batch(first)
    # The test labels condition a conditional VAE; a semi-supervised one sums them out (``estimators``).
    y = vae.one_hot(test.labels[first].to(x.device)) if run.config.conditional and not vae.classifier else None
    for name, estimator in estimators(vae).items():
        spread, variance, stderr = estimator_noise(vae.model, vae.guide, vae.parameters(), x, y, estimator)
        figures[f"elbo_spread_{name}"], figures[f"gradient_variance_{name}"] = spread, variance
        figures[f"gradient_variance_{name}_stderr"] = stderr
    figures["active_units"], *top = active_units(vae, test)
    figures["active_units_top"] = top[0] if top else None
    if vae.completion:  # no prior p(z) to sample from: no FID, no digit accuracy
        classifier = None
        figures["visible_quadrants"] = run.config.visible_quadrants
        figures["cvae_nll"] = -bounds.mean().item()
        figures["baseline_nll"] = mean_baseline_nll(vae, test)
        grey = load_data(run.config, run.device, binarize=False, data_dir=data_dir).test
        figures["cvae_neg_elbo_grey"], figures["baseline_nll_grey"] = grey_target_losses(vae, grey)
    if classifier is not None:
        grey = load_data(run.config, run.device, binarize=False, data_dir=data_dir).test
        figures["fid"] = frechet_distance(vae, classifier, grey, seed=seed)
    if run.config.conditional and classifier is not None:
        from .classifier import digit_accuracy

        figures["digit_accuracy"] = sum(digit_accuracy(classifier, vae)) / run.config.num_classes
    reason = classifier_available(run.config)
    if classifier is None and reason and not vae.completion:
        figures["not_measured"] = {"fid": reason, "digit_accuracy": reason}
    if vae.classifier:
        figures["classification_accuracy"] = classification_accuracy(vae, test)
    return Evaluation(
        elbo=(reconstruction - kl) / n,
        reconstruction=reconstruction / n,
        kl_analytic=kl / n,
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
