"""What the lossless codecs a user already has take for the same images: each image saved alone as a
file with Pillow, headers included, its length in bits.

- ``png``: PNG with ``optimize=True`` (zlib at its best setting and the best filter per image); a
  binarized image (every value 0 or 255) as a 1-bit PNG, the smallest PNG of those pixels.
- ``webp``: lossless WebP, ``lossless=True, quality=100, method=6`` (the slowest, smallest setting).

These are the strongest simple baselines for a density model of 8-bit (or binary) images: its
-log2 p(x) is a code length that bits-back coding can reach, so a model worse than PNG is worse than
a 1996 file format. They are also the "complexity" of an image in the out-of-distribution score of
Serra et al. (2020): ``outliers.py``.
"""

from __future__ import annotations

import io

import numpy as np
import torch

CODECS = ("png", "webp")


def codec_bits(images: torch.Tensor, image_shape: tuple[int, int, int], codec: str = "png") -> np.ndarray:
    """Bits of each image's file under ``codec``, shape (n,); ``images`` (n, C*H*W), uint8 0-255 or
    floats in [0, 1] (rounded to 8 bits), ``image_shape`` (C, H, W)."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    pixels = images.detach().cpu()
    if pixels.dtype != torch.uint8:
        pixels = pixels.mul(255).round().clamp(0, 255).to(torch.uint8)
    channels, height, width = image_shape
    arrays = pixels.reshape(-1, channels, height, width).permute(0, 2, 3, 1).numpy()
    save = _png if codec == "png" else _webp
    return np.array([8 * len(save(array)) for array in arrays], dtype=np.float64)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    if array.shape[2] == 1 and np.isin(array, (0, 255)).all():
        image = Image.fromarray(array[:, :, 0]).convert("1")
    else:
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _webp(array: np.ndarray) -> bytes:
    from PIL import Image

    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", lossless=True, quality=100, method=6)
    return buffer.getvalue()
