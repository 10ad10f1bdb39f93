"""The named sources: MNIST and Fashion-MNIST (60,000 training and 10,000 test images of 28 x 28,
read from their IDX files), CIFAR-10 and SVHN (32 x 32 colour, through torchvision's readers), each
with its own test split.

Missing files are downloaded where a network is reachable and ``PYRO_VAE_OFFLINE`` is unset; otherwise
a one-line error names the folder and the files to put there. Fashion-MNIST is also found where
Debian's ``dataset-fashion-mnist`` puts it.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from ..config import NAMED_SOURCES
from ..errors import PyroVAEError
from ..storage import default_cache_dir
from .common import Source

MNIST_SHAPE = NAMED_SOURCES["mnist"][0]
MNIST_SPLIT_SIZES = {True: 60_000, False: 10_000}  # training, test
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_mnist_like(dataset: str, root: Path) -> Source:
    """MNIST or Fashion-MNIST, 60,000 training and 10,000 test images, from their IDX files (torchvision
    downloads them where they are missing)."""
    splits = [_mnist_split(dataset, root, train) for train in (True, False)]
    return Source(*splits[0], *splits[1], MNIST_SHAPE, NAMED_SOURCES[dataset][1])


def _mnist_split(dataset: str, root: Path, train: bool):
    folder = "MNIST" if dataset == "mnist" else "FashionMNIST"
    name = "MNIST" if dataset == "mnist" else "Fashion-MNIST"
    try:
        data = _read_mnist(root, train) if dataset == "mnist" else _read_fashion(root, train)
        images, labels = data.data.unsqueeze(1), data.targets
    except PyroVAEError:
        raise
    except Exception as error:  # truncated file, wrong magic number, unreadable folder
        raise PyroVAEError(
            f"could not read {name} from {root / folder / 'raw'}: {type(error).__name__}: {error}".splitlines()[0]
        ) from None
    expected = MNIST_SPLIT_SIZES[train]
    if images.shape[0] != expected or labels.shape[0] != expected:
        raise PyroVAEError(
            f"the data in {root / folder / 'raw'} has {images.shape[0]} images and {labels.shape[0]} labels "
            f"in the {'training' if train else 'test'} split, expected {expected}"
        )
    return images, labels


def _offline_or_download(name: str, where: Path, files: str, read):
    """``read(download)``: first from disk; then, unless PYRO_VAE_OFFLINE is set, by downloading."""
    hint = f"put {files} in {where} (or point --data-dir / PYRO_VAE_DATA at a folder that has them)"
    try:
        return read(False)
    except RuntimeError as missing:
        if "not found" not in str(missing).lower() and "download" not in str(missing).lower():
            raise
    if os.environ.get("PYRO_VAE_OFFLINE"):
        raise PyroVAEError(f"{name} not found in {where} (PYRO_VAE_OFFLINE is set, so no download); {hint}")
    try:
        return read(True)
    except Exception as error:  # offline, or the mirror is gone: say where we looked
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(":")
        raise PyroVAEError(f"{name} not found in {where} and the download failed ({reason}; offline?); {hint}") from None


class _IDXSplit:
    """One split read straight from its two IDX files (LeCun's format, which torchvision's MNIST
    reader also parses): ``data`` (N, 28, 28) uint8 and ``targets`` (N,) int64. Importing torchvision
    takes some 3 s on these CPUs, ten times the reading; it is kept for downloads."""

    def __init__(self, raw: Path, train: bool):
        prefix = "train" if train else "t10k"
        self.data = torch.from_numpy(_idx(raw / f"{prefix}-images-idx3-ubyte", dims=3))
        self.targets = torch.from_numpy(_idx(raw / f"{prefix}-labels-idx1-ubyte", dims=1).astype(np.int64))

    @staticmethod
    def present(raw: Path, train: bool) -> bool:
        prefix = "train" if train else "t10k"
        return all((raw / f"{prefix}-{kind}").is_file() for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))


def _idx(path: Path, dims: int) -> np.ndarray:
    """An unsigned-byte IDX array: bytes 0 0 8 ``dims``, the ``dims`` sizes as big-endian 32-bit
    integers, then the values in C order."""
    content = path.read_bytes()
    header = 4 + 4 * dims
    if len(content) < header or content[:4] != bytes((0, 0, 8, dims)):
        raise ValueError(f"{path.name} is not an IDX file of unsigned bytes with {dims} dimensions")
    shape = tuple(int.from_bytes(content[4 + 4 * d : 8 + 4 * d], "big") for d in range(dims))
    if len(content) - header != int(np.prod(shape)):
        raise ValueError(f"{path.name} holds {len(content) - header} values, its header promises {int(np.prod(shape))}")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape).copy()


def _read_mnist(root: Path, train: bool):
    if _IDXSplit.present(root / "MNIST" / "raw", train):
        return _IDXSplit(root / "MNIST" / "raw", train)
    import torchvision  # imported here: it is slow to import and only downloading needs it

    return _offline_or_download(
        "MNIST", root / "MNIST" / "raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
        "and t10k-labels-idx1-ubyte (or the same .gz)",
        lambda download: torchvision.datasets.MNIST(str(root), train=train, download=download),
    )  # fmt: skip


def _read_fashion(root: Path, train: bool):
    unpacked = fashion_root(root)
    if unpacked is not None:
        return _IDXSplit(unpacked / "FashionMNIST" / "raw", train)
    return _offline_or_download(
        "Fashion-MNIST", root / "FashionMNIST" / "raw", f"its four IDX files (or the same .gz), or install Debian's "
        f"package (apt-get install dataset-fashion-mnist, into {DEBIAN_FASHION_MNIST})",
        lambda download: _torchvision().datasets.FashionMNIST(str(root), train=train, download=download),
    )  # fmt: skip


def _torchvision():
    import torchvision

    return torchvision


def fashion_root(root: Path) -> Path | None:
    """A folder whose ``FashionMNIST/raw/`` holds the four uncompressed IDX files that torchvision's
    ``FashionMNIST`` reads: ``root`` itself if it does, else a cache folder into which the gzipped
    files (from ``root/FashionMNIST/raw/`` or Debian's package) are unpacked once; None where no copy
    is found (then torchvision downloads it into ``root``, where the network allows)."""
    if all((root / "FashionMNIST" / "raw" / stem).is_file() for stem in FASHION_FILES):
        return root
    cache = default_cache_dir() / "data"
    unpacked = cache / "FashionMNIST" / "raw"
    packed = {}
    for stem in FASHION_FILES:
        if (unpacked / stem).is_file():
            continue
        packed[stem] = next((folder / (stem + ".gz") for folder in (root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST)
                             if (folder / (stem + ".gz")).is_file()), None)  # fmt: skip
        if packed[stem] is None:
            return None
    for stem, source in packed.items():
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


def read_torchvision(dataset: str, root: Path) -> Source:
    """CIFAR-10 (``root/cifar-10-batches-py/``) or SVHN (``root/SVHN/{train,test}_32x32.mat``)."""
    import torchvision

    if dataset == "cifar10":
        where, files = root, "cifar-10-batches-py/ (unpacked from cifar-10-python.tar.gz)"
        read = lambda train: lambda download: torchvision.datasets.CIFAR10(str(root), train=train, download=download)  # noqa: E731
    else:
        try:
            import scipy.io  # noqa: F401  (torchvision's SVHN reader needs it)
        except ImportError:
            raise PyroVAEError("--dataset svhn needs scipy to read its .mat files: pip install scipy") from None
        where, files = root / "SVHN", "train_32x32.mat and test_32x32.mat"
        read = lambda train: lambda download: torchvision.datasets.SVHN(  # noqa: E731
            str(root / "SVHN"), split="train" if train else "test", download=download)
    name = "CIFAR-10" if dataset == "cifar10" else "SVHN"
    splits = []
    for train in (True, False):
        data = _offline_or_download(name, where, files, read(train))
        images = np.asarray(data.data)
        images = images.transpose(0, 3, 1, 2) if dataset == "cifar10" else images  # CIFAR is (N, H, W, C)
        labels = np.asarray(data.targets if dataset == "cifar10" else data.labels, dtype=np.int64)
        splits += [torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)]
    return Source(*splits, NAMED_SOURCES[dataset][0], NAMED_SOURCES[dataset][1])
