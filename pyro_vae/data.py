"""MNIST or Fashion-MNIST as tensors on the training device; batches are index slices, not a
per-item DataLoader.

The data root is chosen by, in order: the explicit ``data_dir`` (``--data-dir``), the environment
variable ``PYRO_VAE_DATA``, and a per-user cache directory. It holds ``MNIST/raw/`` (and
``FashionMNIST/raw/``) in torchvision's layout, and torchvision's ``MNIST`` and ``FashionMNIST``
read both. Missing MNIST files are downloaded by torchvision unless ``PYRO_VAE_OFFLINE`` is set.
Fashion-MNIST is also found where Debian's ``dataset-fashion-mnist`` package puts it,
``/usr/share/datasets/fashion-mnist/``, gzipped; it is unpacked once into the cache.
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import IMAGE_PIXELS, NUM_CLASSES
from .errors import PyroVAEError

IMAGE_SHAPE = (28, 28)  # IMAGE_PIXELS and NUM_CLASSES live in config (the parameter count needs them)
TEST_BINARIZATION_SEED = 1234  # fixed, so that test figures compare between runs
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


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
    labeled: Split | None = None  # semi-supervised: the training images whose labels are kept (grey)

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


def _read_fashion_split(root: Path, train: bool):
    import torchvision

    return torchvision.datasets.FashionMNIST(str(fashion_root(root)), train=train, download=False)


def fashion_root(root: Path) -> Path:
    """A folder whose ``FashionMNIST/raw/`` holds the four uncompressed IDX files that torchvision's
    ``FashionMNIST`` reads: ``root`` itself if it does, else a cache folder into which the gzipped
    files (from ``root/FashionMNIST/raw/`` or Debian's package) are unpacked once."""
    if all((root / "FashionMNIST" / "raw" / stem).is_file() for stem in FASHION_FILES):
        return root
    cache = default_cache_dir() / "data"
    unpacked = cache / "FashionMNIST" / "raw"
    for stem in FASHION_FILES:
        if (unpacked / stem).is_file():
            continue
        source = next((folder / (stem + ".gz") for folder in (root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST)
                       if (folder / (stem + ".gz")).is_file()), None)  # fmt: skip
        if source is None:
            raise PyroVAEError(
                f"Fashion-MNIST not found in {root / 'FashionMNIST' / 'raw'} or {DEBIAN_FASHION_MNIST}; install "
                f"Debian's package (apt-get install dataset-fashion-mnist) or point --data-dir at a folder "
                f"holding FashionMNIST/raw/"
            )
        _gunzip(source, unpacked / stem)
    return cache


def _gunzip(source: Path, target: Path) -> None:
    """Unpack to a temporary name, then rename: a half-written file is never taken for data."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    try:
        with gzip.open(source, "rb") as packed, open(temporary, "wb") as unpacked:
            shutil.copyfileobj(packed, unpacked)
        os.replace(temporary, target)
    except (OSError, EOFError) as error:
        temporary.unlink(missing_ok=True)
        raise PyroVAEError(f"could not unpack Fashion-MNIST from {source}: {error}") from None


READERS = {"mnist": ("MNIST", _read_split), "fashion-mnist": ("FashionMNIST", _read_fashion_split)}


def load_split(root: Path, train: bool, device: torch.device, dataset: str = "mnist") -> Split:
    """One split of ``dataset`` through torchvision's reader, as tensors on ``device``."""
    folder, read = READERS[dataset]
    try:
        data = read(root, train)
        images = data.data.reshape(-1, IMAGE_PIXELS)
        labels = data.targets
    except PyroVAEError:
        raise
    except Exception as error:  # truncated file, wrong magic number, unreadable folder
        name = "MNIST" if dataset == "mnist" else "Fashion-MNIST"
        raise PyroVAEError(
            f"could not read {name} from {root / folder / 'raw'}: {type(error).__name__}: {error}".splitlines()[0]
        ) from None
    return _to_split(images, labels, train, root / folder / "raw", device)


def _to_split(images, labels, train: bool, where: Path, device: torch.device) -> Split:
    expected = 60000 if train else 10000
    if images.shape[0] != expected or labels.shape[0] != expected:
        raise PyroVAEError(
            f"the data in {where} has {images.shape[0]} images and {labels.shape[0]} labels "
            f"in the {'training' if train else 'test'} split, expected {expected}"
        )
    return Split(images.to(device, torch.float32) / 255.0, labels.to(device, torch.int64))


def load_dataset(
    dataset: str, data_dir: str | None, device: torch.device, binarize: bool
) -> MNISTData:
    """Both splits of ``dataset`` ("mnist" or "fashion-mnist") on ``device``. With ``binarize``
    (Bernoulli likelihood) the test split is binarized once with a fixed seed and the training
    split is left grey for per-epoch sampling."""
    root = resolve_data_root(data_dir)
    train = load_split(root, True, device, dataset)
    test = load_split(root, False, device, dataset)
    if binarize:
        generator = torch.Generator().manual_seed(TEST_BINARIZATION_SEED)
        binary = torch.bernoulli(test.images.cpu(), generator=generator)
        test = Split(binary.to(device), test.labels)
    return MNISTData(train=train, test=test, binarize_train=binarize)


def balanced_labels(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """Indices of ``count`` training images, ``count / NUM_CLASSES`` of each class, drawn by ``seed``
    (its own generator, so the choice depends on nothing else), sorted."""
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    chosen = []
    for digit in range(NUM_CLASSES):
        members = (labels == digit).nonzero().squeeze(1)
        if len(members) < count // NUM_CLASSES:
            raise PyroVAEError(
                f"--labels {count} asks for {count // NUM_CLASSES} images of each class, but class {digit} has "
                f"only {len(members)} training images; use at most {NUM_CLASSES * _smallest_class(labels)}"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[: count // NUM_CLASSES]])
    return torch.cat(chosen).sort().values


def _smallest_class(labels: torch.Tensor) -> int:
    return int(torch.bincount(labels, minlength=NUM_CLASSES).min())


def keep_labels(data: MNISTData, index: torch.Tensor) -> MNISTData:
    """The semi-supervised split: the images at ``index`` keep their labels (``data.labeled``), the
    rest of the training split becomes the unlabeled ``data.train`` (its labels stay on the tensor for
    the figures; training never reads them)."""
    device = data.train.images.device
    unlabeled = torch.ones(len(data.train), dtype=torch.bool)
    unlabeled[index] = False
    unlabeled, index = unlabeled.to(device), index.to(device)
    labeled = Split(data.train.images[index], data.train.labels[index])
    rest = Split(data.train.images[unlabeled], data.train.labels[unlabeled])
    return MNISTData(train=rest, test=data.test, binarize_train=data.binarize_train, labeled=labeled)


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
