"""Draw images from the prior: z ~ p(z) (``VAE.prior``), then the decoder's mean E[x | z, y]."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyro.distributions as dist
import torch

from .config import MAX_SEED
from .data import IMAGE_SHAPE, NUM_CLASSES, one_hot
from .errors import PyroVAEError
from .model import VAE

OUTPUT_SUFFIXES = (".png", ".npy")
MAX_SAMPLES = 100_000  # 314 MB of float32 images; more is almost surely a typo


def check_digit(digit: int | None) -> None:
    if digit is not None and (isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit < NUM_CLASSES):
        raise PyroVAEError(f"--digit must be an integer from 0 to 9, got {digit!r}")


def sample_labels(vae: VAE, n: int, digit: int | None) -> torch.Tensor | None:
    """The labels to condition on: ``digit`` n times, or ceil(n/10) of each digit for a
    conditional run with no digit (one grid row per digit), or None for a plain VAE."""
    check_digit(digit)
    if digit is not None:
        if not vae.config.conditional:
            raise PyroVAEError("--digit needs a conditional run (train one with --conditional)")
        return torch.full((n,), digit, dtype=torch.int64)
    if vae.config.conditional:
        return torch.arange(NUM_CLASSES).repeat_interleave(math.ceil(n / NUM_CLASSES))
    return None


@torch.no_grad()
def sample_images(vae: VAE, n: int = 64, digit: int | None = None, seed: int = 0):
    """Returns ``(images, labels)``: images (m, 28, 28) float32 in [0, 1] on the CPU, where m = n,
    or 10 * ceil(n / 10) for a conditional run without ``digit``; labels (m,) or None."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_SAMPLES:
        raise PyroVAEError(f"--n must be an integer from 1 to {MAX_SAMPLES}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise PyroVAEError(f"--seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    if vae.completion:
        raise PyroVAEError("this run completes images (--visible-quadrants): its prior p(z | x_visible) needs "
                           "the visible pixels, so draw completions with pyro-vae complete")  # fmt: skip
    labels = sample_labels(vae, n, digit)
    count = n if labels is None else labels.shape[0]
    device = next(vae.parameters()).device
    z = draw_prior(vae, count, torch.Generator().manual_seed(seed))
    condition = None if labels is None else one_hot(labels.to(device))
    images = vae.decode_mean(z, condition).reshape(count, *IMAGE_SHAPE)
    return images.float().cpu(), labels


@torch.no_grad()
def draw_prior(vae: VAE, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws of the latent the decoder reads, on the VAE's device: z ~ p(z), or with two layers
    z2 ~ p(z2) then z1 ~ p(z1 | z2). Diagonal Gaussians are drawn as loc + scale * eps with eps from
    the CPU ``generator``, so a seed gives the same z, and images, on any device; another prior (a
    mixture) samples itself, seeded from the generator."""
    z = draw(vae.prior((n,)), generator)
    for layer in vae.downward:
        z = draw(layer(z), generator)
    return z


def draw(distribution: dist.Distribution, generator: torch.Generator) -> torch.Tensor:
    """One draw of ``distribution`` (see ``draw_prior``)."""
    base = distribution.base_dist if isinstance(distribution, dist.Independent) else None
    if type(base) is dist.Normal:
        noise = torch.randn(distribution.shape(), generator=generator)
        return base.loc + base.scale * noise.to(base.loc.device)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    cuda_devices = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda_devices):  # the run's own generators stay untouched
        torch.manual_seed(seed)
        return distribution.sample()


def check_output_path(path: str | Path) -> Path:
    """Fail before any sampling if the output cannot be written."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise PyroVAEError(f"--out must end in .png (image grid) or .npy (array), got {str(path)!r}")
    if not path.parent.is_dir():
        raise PyroVAEError(f"cannot write {path}: folder {path.parent} does not exist")
    return path


def default_output_path(digit: int | None, folder: str | Path = ".", stem: str = "samples") -> Path:
    """``samples.png`` or ``samples-digitD.png`` in ``folder``; if taken, the first free
    ``samples-digitD-2.png``, ``-3``, ... so that no earlier file is overwritten."""
    stem = stem if digit is None else f"{stem}-digit{digit}"
    path, number = Path(folder) / f"{stem}.png", 1
    while path.exists():
        number += 1
        path = Path(folder) / f"{stem}-{number}.png"
    return path


def save_images(images: torch.Tensor, path: str | Path, nrow: int, exclusive: bool = False) -> Path:
    """``.png``: a grid of decoder means, ``nrow`` images per row; ``.npy``: the (m, 28, 28) array.
    ``exclusive``: refuse to replace an existing file (the default names, which the user did not type)."""
    path = check_output_path(path)
    try:
        with open(path, "xb" if exclusive else "wb") as handle:
            if path.suffix.lower() == ".npy":
                np.save(handle, images.numpy().astype(np.float32))
            else:
                from torchvision.utils import save_image

                save_image(images.unsqueeze(1), handle, format="png", nrow=nrow, padding=2, pad_value=0.5)
    except FileExistsError:
        raise PyroVAEError(f"{path} appeared while sampling; not overwriting it, run the command again") from None
    except OSError as error:
        raise PyroVAEError(f"cannot write {path}: {error.strerror or error}") from None
    return path


def grid_columns(n: int, labels: torch.Tensor | None, digit: int | None) -> int:
    """Images per grid row: one row per digit for a conditional run without --digit, else square."""
    if labels is not None and digit is None:
        return labels.shape[0] // NUM_CLASSES
    return max(1, math.ceil(math.sqrt(n)))
