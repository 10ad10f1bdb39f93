"""Draw images from the prior: z ~ p(z) (``VAE.prior``), then the decoder's mean E[x | z, y]."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .config import MAX_SAMPLES, MAX_SEED
from .errors import PyroVAEError
from .model import VAE
from .rng import draw

OUTPUT_KINDS = {".png": "image grid", ".npy": "array"}  # suffix -> what it writes


def check_digit(digit: int | None, num_classes: int) -> None:
    if digit is not None and (isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit < num_classes):
        raise PyroVAEError(f"--digit must be an integer from 0 to {num_classes - 1}, got {digit!r}")


def class_index(config, wanted: int | str) -> int:
    """The index of class ``wanted`` of a run: its index (an int, or digits as text) or its name."""
    names = config.class_names or ()
    if isinstance(wanted, str) and wanted in names:
        return names.index(wanted)
    if isinstance(wanted, str) and wanted.strip().isdigit():
        wanted = int(wanted)
    if isinstance(wanted, int) and not isinstance(wanted, bool) and 0 <= wanted < len(names):
        return wanted
    listed = ", ".join(f"{index} {name}" if name != str(index) else name for index, name in enumerate(names[:20]))
    raise PyroVAEError(f"this run has no class {wanted!r}; its classes are {listed or 'none (no labels)'}")


def sample_labels(vae: VAE, n: int, digit: int | str | None) -> torch.Tensor | None:
    """The labels to condition on: class ``digit`` (an index or a name) n times, or ceil(n/classes)
    of each class for a conditional run with no class asked (one grid row per class), or None for a
    plain VAE."""
    config = vae.config
    if digit is not None:
        if isinstance(digit, int) and config.num_classes:
            check_digit(digit, config.num_classes)
        if not config.conditional:
            raise PyroVAEError("--digit and --class need a conditional run (train one with --conditional)")
        return torch.full((n,), class_index(config, digit), dtype=torch.int64)
    if config.conditional:
        return torch.arange(config.num_classes).repeat_interleave(math.ceil(n / config.num_classes))
    return None


def displayed(images: torch.Tensor, image_shape) -> torch.Tensor:
    """Flat images (m, C*H*W) -> what a person looks at: (m, H, W) grey, (m, H, W, 3) colour."""
    channels, height, width = image_shape
    images = images.reshape(-1, channels, height, width)
    return images[:, 0] if channels == 1 else images.permute(0, 2, 3, 1)


def channels_first(images: torch.Tensor) -> torch.Tensor:
    """(m, H, W) or (m, H, W, 3) -> (m, C, H, W), torchvision's layout."""
    return images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)


@torch.no_grad()
def sample_images(vae: VAE, n: int = 64, digit: int | None = None, seed: int = 0):
    """Returns ``(images, labels)``: images (m, H, W), or (m, H, W, 3) in colour, float32 in [0, 1] on
    the CPU, where m = n, or classes * ceil(n / classes) for a conditional run without ``digit``
    (a class index or name); labels (m,) or None."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_SAMPLES:
        raise PyroVAEError(f"--n must be an integer from 1 to {MAX_SAMPLES}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise PyroVAEError(f"--seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    if not vae.draws_from_prior:
        raise PyroVAEError("this run completes images (--visible-quadrants): its prior p(z | x_visible) needs "
                           "the visible pixels, so draw completions with pyro-vae complete")  # fmt: skip
    labels = sample_labels(vae, n, digit)
    count = n if labels is None else labels.shape[0]
    device = next(vae.parameters()).device
    condition = vae.one_hot(None if labels is None else labels.to(device))
    z = draw_prior(vae, count, torch.Generator().manual_seed(seed), None if condition is None else vae.condition(condition))
    images = displayed(vae.decode_mean(z, condition), vae.config.image_shape)
    return images.float().cpu(), labels


@torch.no_grad()
def draw_prior(vae: VAE, n: int | tuple[int, ...], generator: torch.Generator,
               condition: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """n draws (or draws of batch shape n) of the latent the decoder reads, on the VAE's device:
    z ~ p(z) (p(z | c) for a prior that reads the ``condition``: the class-conditional VampPrior, the
    completion prior network), or in a hierarchy z_N ~ p(z_N), then each z_l ~ p(z_l | z_>l[, y]) down to z_1. Diagonal Gaussians are drawn as loc + scale * eps with eps from
    the CPU ``generator``, so a seed gives the same z, and images, on any device; another prior (a
    mixture) samples itself, seeded from the generator."""
    z = draw(vae.prior((n,) if isinstance(n, int) else n, condition), generator)
    return vae.descend(z, condition, lambda group, state: draw(group.prior(state), generator))


@torch.no_grad()
def style_latents(vae: VAE, columns: int, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The latents of a style figure, one row of ``columns`` per class, ``y`` the rows' one-hot labels
    (classes * columns, classes): one draw of z ~ p(z) per column, the same down it; where z_l ~
    p(z_l | z_>l, y) (a hierarchy that reads the label) each class's own z_1 from the same z_N and noise."""
    classes = y.shape[0] // columns
    if not any(layer.condition_dim for layer in vae.downward):
        return draw_prior(vae, columns, generator).repeat(classes, 1)
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))  # one generator state for every row
    return torch.cat([draw_prior(vae, columns, torch.Generator().manual_seed(seed), vae.condition(row))
                      for row in y.split(columns)])  # fmt: skip


def check_output_path(path: str | Path, kinds: dict[str, str] = OUTPUT_KINDS) -> Path:
    """Fail before any work if the output cannot be written: its suffix one of ``kinds`` (suffix ->
    what it writes), its folder there."""
    path = Path(path)
    if path.suffix.lower() not in kinds:
        allowed = " or ".join(f"{suffix} ({what})" for suffix, what in kinds.items())
        raise PyroVAEError(f"--out must end in {allowed}, got {str(path)!r}")
    if not path.parent.is_dir():
        raise PyroVAEError(f"cannot write {path}: folder {path.parent} does not exist")
    return path


def default_output_path(digit: int | None, folder: str | Path = ".", stem: str = "samples", label: str = "digit") -> Path:
    """``samples.png`` or ``samples-digitD.png`` (``samples-classC.png``) in ``folder``; if taken, the
    first free ``samples-digitD-2.png``, ``-3``, ... so that no earlier file is overwritten."""
    stem = stem if digit is None else f"{stem}-{label}{_safe(str(digit))}"
    path, number = Path(folder) / f"{stem}.png", 1
    while path.exists():
        number += 1
        path = Path(folder) / f"{stem}-{number}.png"
    return path


def _safe(name: str) -> str:
    """A class name as part of a file name."""
    return "".join(character if character.isalnum() or character in "-_" else "_" for character in name)


def save_images(images: torch.Tensor, path: str | Path, nrow: int, exclusive: bool = False) -> Path:
    """``.png``: a grid of decoder means, ``nrow`` images per row (in colour for colour images);
    ``.npy``: the array as ``sample_images`` gives it, (m, H, W) or (m, H, W, 3).
    ``exclusive``: refuse to replace an existing file (the default names, which the user did not type)."""
    path = check_output_path(path)
    try:
        with open(path, "xb" if exclusive else "wb") as handle:
            if path.suffix.lower() == ".npy":
                np.save(handle, images.numpy().astype(np.float32))
            else:
                from torchvision.utils import save_image

                save_image(channels_first(images), handle, format="png", nrow=nrow, padding=2, pad_value=0.5)
    except FileExistsError:
        raise PyroVAEError(f"{path} appeared while sampling; not overwriting it, run the command again") from None
    except OSError as error:
        raise PyroVAEError(f"cannot write {path}: {error.strerror or error}") from None
    return path


def grid_columns(n: int, labels: torch.Tensor | None, digit: int | str | None) -> int:
    """Images per grid row: one row per class for a conditional run without --digit, else square."""
    if labels is not None and digit is None:
        return labels.shape[0] // (int(labels.max()) + 1)
    return max(1, math.ceil(math.sqrt(n)))
