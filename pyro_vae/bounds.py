"""The importance-weighted bound over a split, in nats per image (Burda et al. 2015): with
z_1..z_k ~ q(z|x),

    log p(x) >= L_k(x) = log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   L_1 = ELBO <= L_k <= log p(x),

so k=1 gives a one-sample ELBO estimate and a larger k a tighter bound; the ELBO's parts (the
reconstruction averaged over the same k draws, the KL in closed form by hand and by Pyro where the
pieces have one); and bits per dimension, through uniform dequantization for a continuous likelihood.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import TraceMeanField_ELBO

from .data import Split
from .distributed import SINGLE, World, shared_chunks, stream_seed
from .objectives import particle_log_weights

if TYPE_CHECKING:  # type hints only: the model imports nothing of the evaluator
    from .model import VAE

# Decoder rows (image, draw) at once. On CPU 4096 rows keep the 13 MB of logits near the cores'
# caches: 10 us a row against 24 at 32768 here (bench/kernels.py); a GPU wants big launches.
ROWS_PER_CHUNK = 4096
GPU_ROWS_PER_CHUNK = 65536
# A conv decoder row holds some 30k values of feature maps: 256 rows ran 9,980 rows a second here
# against 5,331 at 4,096 (the conv VAE of results/conv-vae, IWAE weights of 256 test images, k=64).
CONV_ROWS_PER_CHUNK = 256

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


def image_log_probability(log_likelihood, dequantized: bool, pixels: int):
    """log P(x) of the stored (8-bit or binarized) image: the bound itself, or with dequantization
    E[log p(u)] - D log 256 (a float or a tensor of them)."""
    return log_likelihood - (pixels * math.log(256) if dequantized else 0.0)


def bits_per_dim(log_likelihood, dequantized: bool, pixels: int):
    """-log2 P(x) / D over the D = C*H*W subpixels; with dequantization, the 8-bit image's bound:
    8 - E[log p(u)] / (D ln 2)."""
    return -image_log_probability(log_likelihood, dequantized, pixels) / (pixels * math.log(2))


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

    def step(index):
        if seed is not None:
            torch.manual_seed(stream_seed(seed, stream, int(index[0])))
        return _chunk_bounds(vae, images, index, labels is not None, k)

    bounds, reconstruction, kl_mc, kl, kl_pyro = [], 0.0, 0.0, 0.0, 0.0
    for chunk_bounds, chunk_reconstruction, chunk_kl_mc, closed_form, closed_form_pyro in shared_chunks(
            images.index_chunks(batch_size), world, step):  # fmt: skip
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
