"""MNIST as tensors on the training device; batches are index slices, not a per-item DataLoader.

The data root is chosen by, in order: the explicit ``data_dir`` (``--data-dir``), the environment
variable ``PYRO_VAE_DATA``, and a per-user cache directory. It holds ``MNIST/raw/`` in torchvision's
layout. Missing files are downloaded by torchvision unless ``PYRO_VAE_OFFLINE`` is set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import PyroVAEError

IMAGE_SHAPE = (28, 28)
IMAGE_PIXELS = 28 * 28
NUM_CLASSES = 10
TEST_BINARIZATION_SEED = 1234  # fixed, so that test figures compare between runs


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pyro-vae"


def resolve_data_root(data_dir: str | None = None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("PYRO_VAE_DATA"):
        return Path(os.environ["PYRO_VAE_DATA"]).expanduser()
    return default_cache_dir() / "data"


@dataclass
class Split:
    """One split held whole on the device: ``images`` (N, 784) in [0, 1], ``labels`` (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class MNISTData:
    train: Split
    test: Split  # already binarized once, with a fixed seed, when the likelihood is Bernoulli
    binarize_train: bool  # draw fresh binary pixels every epoch (dynamic binarization)

    def train_epoch(self) -> torch.Tensor:
        """The training images for one epoch: freshly binarized for Bernoulli, else as stored."""
        if self.binarize_train:
            return torch.bernoulli(self.train.images)  # the global generator, so resume replays it
        return self.train.images


def _read_split(root: Path, train: bool):
    import torchvision  # imported here: it is slow to import and only data loading needs it

    try:
        return torchvision.datasets.MNIST(str(root), train=train, download=False)
    except RuntimeError as missing:
        if "not found" not in str(missing).lower():
            raise
    where = root / "MNIST" / "raw"
    hint = "point the tool at a copy with --data-dir DIR or PYRO_VAE_DATA=DIR, where DIR holds MNIST/raw/"
    if os.environ.get("PYRO_VAE_OFFLINE"):
        raise PyroVAEError(f"MNIST not found in {where} (PYRO_VAE_OFFLINE is set, so no download); {hint}")
    try:
        return torchvision.datasets.MNIST(str(root), train=train, download=True)
    except Exception as error:  # offline, or the mirror is gone: say where we looked
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(":")
        raise PyroVAEError(
            f"MNIST not found in {where} and the download failed ({reason}; offline?); {hint}"
        ) from None


def load_split(root: Path, train: bool, device: torch.device) -> Split:
    try:
        dataset = _read_split(root, train)
        images = dataset.data.reshape(-1, IMAGE_PIXELS)
        labels = dataset.targets
    except PyroVAEError:
        raise
    except Exception as error:  # truncated file, wrong magic number, unreadable folder
        raise PyroVAEError(
            f"could not read MNIST from {root / 'MNIST' / 'raw'}: {type(error).__name__}: {error}".splitlines()[0]
        ) from None
    expected = 60000 if train else 10000
    if images.shape[0] != expected or labels.shape[0] != expected:
        raise PyroVAEError(
            f"MNIST in {root / 'MNIST' / 'raw'} has {images.shape[0]} images and {labels.shape[0]} labels "
            f"in the {'training' if train else 'test'} split, expected {expected}"
        )
    return Split(images.to(device, torch.float32) / 255.0, labels.to(device, torch.int64))


def load_mnist(
    data_dir: str | None, device: torch.device, binarize: bool
) -> MNISTData:
    """Both splits on ``device``. With ``binarize`` (Bernoulli likelihood) the test split is
    binarized once with a fixed seed and the training split is left grey for per-epoch sampling."""
    root = resolve_data_root(data_dir)
    train = load_split(root, True, device)
    test = load_split(root, False, device)
    if binarize:
        generator = torch.Generator().manual_seed(TEST_BINARIZATION_SEED)
        binary = torch.bernoulli(test.images.cpu(), generator=generator)
        test = Split(binary.to(device), test.labels)
    return MNISTData(train=train, test=test, binarize_train=binarize)


def batches(num_items: int, batch_size: int, device: torch.device, shuffle: bool):
    """Index tensors that cover ``range(num_items)`` in order or in a fresh random order."""
    if shuffle:
        order = torch.randperm(num_items, device=device)
    else:
        order = torch.arange(num_items, device=device)
    return order.split(batch_size)


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, NUM_CLASSES).to(torch.float32)
