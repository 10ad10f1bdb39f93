"""MNIST or Fashion-MNIST as tensors on the training device; batches are index slices, not a
per-item DataLoader.

The data root is chosen by, in order: the explicit ``data_dir`` (``--data-dir``), the environment
variable ``PYRO_VAE_DATA``, and a per-user cache directory. It holds ``MNIST/raw/`` (and
``FashionMNIST/raw/``) in torchvision's layout. Missing MNIST files are downloaded by torchvision
unless ``PYRO_VAE_OFFLINE`` is set. Fashion-MNIST is also found where Debian's
``dataset-fashion-mnist`` package puts it, ``/usr/share/datasets/fashion-mnist/``.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import PyroVAEError

IMAGE_SHAPE = (28, 28)
IMAGE_PIXELS = 28 * 28
NUM_CLASSES = 10
TEST_BINARIZATION_SEED = 1234  # fixed, so that test figures compare between runs
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}  # fmt: skip


def class_names(dataset: str) -> tuple[str, ...]:
    return FASHION_CLASSES if dataset == "fashion-mnist" else tuple(str(digit) for digit in range(NUM_CLASSES))


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
            return binarize(self.train.images)
        return self.train.images


def binarize(images: torch.Tensor) -> torch.Tensor:
    """One Bernoulli draw per pixel, x ~ Bernoulli(grey level): u < p for u ~ U(0, 1) is 1 with
    probability p. Twice as fast on the CPU as ``torch.bernoulli``, which matters at 47 million
    pixels an epoch. The global generator, so that resume replays it."""
    return (torch.rand_like(images) < images).to(images.dtype)


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
    return _to_split(images, labels, train, root / "MNIST" / "raw", device)


def _to_split(images, labels, train: bool, where: Path, device: torch.device) -> Split:
    expected = 60000 if train else 10000
    if images.shape[0] != expected or labels.shape[0] != expected:
        raise PyroVAEError(
            f"the data in {where} has {images.shape[0]} images and {labels.shape[0]} labels "
            f"in the {'training' if train else 'test'} split, expected {expected}"
        )
    return Split(images.to(device, torch.float32) / 255.0, labels.to(device, torch.int64))


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (the MNIST format, optionally gzipped) of unsigned bytes as a uint8 tensor:
    magic 0x0000 0x08 ndim, then ndim big-endian int32 sizes, then the data."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
        content = handle.read()
    if len(content) < 4 or content[:3] != b"\x00\x00\x08":
        raise PyroVAEError(f"{path} is not an IDX file of unsigned bytes")
    ndim = content[3]
    shape = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = content[4 + 4 * ndim :]
    if len(body) != int(torch.Size(shape).numel()):
        raise PyroVAEError(f"{path} is truncated: {len(body)} bytes for a {shape} array")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def fashion_folders(root: Path) -> list[Path]:
    return [root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST]


def _find_idx(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def load_fashion_split(root: Path, train: bool, device: torch.device) -> Split:
    folders = fashion_folders(root)
    paths = [_find_idx(folders, stem) for stem in IDX_FILES[train]]
    if None in paths:
        raise PyroVAEError(
            f"Fashion-MNIST not found in {folders[0]} or {folders[1]}; install Debian's package "
            f"(apt-get install dataset-fashion-mnist) or point --data-dir at a folder holding FashionMNIST/raw/"
        )
    try:
        images, labels = (read_idx(path) for path in paths)
    except OSError as error:
        raise PyroVAEError(f"could not read Fashion-MNIST from {paths[0].parent}: {error}") from None
    return _to_split(images.reshape(-1, IMAGE_PIXELS), labels, train, paths[0].parent, device)


def load_dataset(
    dataset: str, data_dir: str | None, device: torch.device, binarize: bool
) -> MNISTData:
    """Both splits of ``dataset`` ("mnist" or "fashion-mnist") on ``device``. With ``binarize``
    (Bernoulli likelihood) the test split is binarized once with a fixed seed and the training
    split is left grey for per-epoch sampling."""
    root = resolve_data_root(data_dir)
    load = load_fashion_split if dataset == "fashion-mnist" else load_split
    train = load(root, True, device)
    test = load(root, False, device)
    if binarize:
        generator = torch.Generator().manual_seed(TEST_BINARIZATION_SEED)
        binary = torch.bernoulli(test.images.cpu(), generator=generator)
        test = Split(binary.to(device), test.labels)
    return MNISTData(train=train, test=test, binarize_train=binarize)


def load_mnist(data_dir: str | None, device: torch.device, binarize: bool) -> MNISTData:
    return load_dataset("mnist", data_dir, device, binarize)


def batches(num_items: int, batch_size: int, device: torch.device, shuffle: bool):
    """Index tensors that cover ``range(num_items)`` in order or in a fresh random order."""
    if shuffle:
        order = torch.randperm(num_items, device=device)
    else:
        order = torch.arange(num_items, device=device)
    return order.split(batch_size)


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, NUM_CLASSES).to(torch.float32)
