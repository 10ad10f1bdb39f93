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

import hashlib
import io
import json

import numpy as np
import torch

from .storage import default_cache_dir

CODECS = ("png", "webp")


def codec_bits(images: torch.Tensor, image_shape: tuple[int, int, int], codec: str = "png") -> np.ndarray:
    """Bits of each image's file under ``codec``, shape (n,); ``images`` (n, C*H*W), uint8 0-255 or
    floats in [0, 1] (rounded to 8 bits), ``image_shape`` (C, H, W)."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    pixels = _as_uint8(images)
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


def split_bits_per_dim(split, image_shape: tuple[int, int, int], codec: str) -> float:
    """The codec's bits per subpixel over a ``data.Split``, each image its own file, headers
    included: sum of the files' bits / (n C H W). Cached under the cache folder by the images' bytes
    (the same test images are scored by every run of a source)."""
    digest = hashlib.sha256(f"{codec} {tuple(image_shape)}".encode())
    for images, _ in split.chunks():
        digest.update(_as_uint8(images).numpy().tobytes())
    cached = default_cache_dir() / "codecs" / f"{digest.hexdigest()[:32]}.json"
    if cached.exists():
        return json.loads(cached.read_text())["bits_per_dim"]
    bits = sum(float(codec_bits(images, image_shape, codec).sum()) for images, _ in split.chunks())
    value = bits / (len(split) * int(np.prod(image_shape)))
    cached.parent.mkdir(parents=True, exist_ok=True)
    temporary = cached.with_suffix(".tmp")
    temporary.write_text(json.dumps({"codec": codec, "images": len(split), "bits_per_dim": value}))
    temporary.replace(cached)
    return value


def _as_uint8(images: torch.Tensor) -> torch.Tensor:
    pixels = images.detach().cpu()
    return pixels if pixels.dtype == torch.uint8 else pixels.mul(255).round().clamp(0, 255).to(torch.uint8)
