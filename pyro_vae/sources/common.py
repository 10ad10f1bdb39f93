"""What every reader returns (``Source``), and the one conversion of ``--image-size`` and ``--channels``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config, image_size_of

CHUNK = 2048  # images converted at a time


@dataclass
class Source:
    """Images (N, C, H, W) uint8 as an array or tensor, or a ``DiskImages`` file (flattened rows)."""

    train_images: object
    train_labels: np.ndarray | torch.Tensor | None
    test_images: object | None
    test_labels: np.ndarray | torch.Tensor | None
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    train_names: tuple[str, ...] | None = None  # a folder's file names, relative to it, in the images' order
    test_names: tuple[str, ...] | None = None


def convert(images: torch.Tensor, size: tuple[int, int] | None, channels: int | None) -> torch.Tensor:
    """uint8 (n, C, H, W) -> uint8 (n, channels, *size): luma or repetition for the channels, then a
    bilinear antialiased resize, rounded back to 0-255."""
    if channels is not None and channels != images.shape[1]:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1)
        else:  # ITU-R 601-2 luma, Pillow's convert("L")
            weights = torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    if size is not None and tuple(images.shape[-2:]) != tuple(size):
        resized = torch.nn.functional.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        images = resized.round().clamp(0, 255).to(torch.uint8)
    return images.contiguous()


def target_shape(config: Config, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    size = image_size_of(config) or shape[1:]
    return (config.channels or shape[0], *size)


def needs_conversion(config: Config, shape) -> bool:
    return target_shape(config, tuple(shape)) != tuple(shape)


def transformed(config: Config, source: Source) -> Source:
    """An in-memory source after ``--image-size`` and ``--channels``."""
    if not needs_conversion(config, source.image_shape):
        return source
    size, channels = image_size_of(config), config.channels

    def apply(images):
        if images is None:
            return None
        images = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        return torch.cat([convert(chunk, size, channels) for chunk in images.split(CHUNK)])

    return Source(apply(source.train_images), source.train_labels, apply(source.test_images), source.test_labels,
                  target_shape(config, source.image_shape), source.class_names, source.train_names,
                  source.test_names)  # fmt: skip
