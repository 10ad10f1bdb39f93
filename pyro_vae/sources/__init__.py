"""Read a source of images into uint8 arrays (N, C, H, W), with labels and class names where it has them.

Sources (``Config.dataset``):

- ``mnist``, ``fashion-mnist``, ``cifar10``, ``svhn``: torchvision's readers under the data root
  (``MNIST/raw/``, ``FashionMNIST/raw/``, ``cifar-10-batches-py/``, ``SVHN/``), each with its own test
  split. Missing files are downloaded where a network is reachable and ``PYRO_VAE_OFFLINE`` is unset;
  otherwise a one-line error names the folder and the files to put there. Fashion-MNIST is also
  found where Debian's ``dataset-fashion-mnist`` puts it.
- a folder of images (whatever Pillow reads): flat (no labels), or one subfolder per class
  (torchvision's ImageFolder convention: the classes are the sorted subfolder names); a folder whose
  subfolders are exactly ``train`` and ``test`` gives its own test split, each of them flat or by
  class. Images are taken in the order of their file names (ties by class), so a tree written from a
  numbered set keeps its order.
- a ``.npy`` array (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3, uint8 0-255 or float in
  [0, 1]; or a ``.npz`` holding ``images`` like that and optionally ``labels`` (N,) and
  ``class_names``, and ``test_images`` (with ``test_labels`` where there are labels) as its own test
  split.

``--image-size`` resizes (bilinear, antialiased) and ``--channels`` converts (grey to colour by
repetition, colour to grey by ITU-R 601 luma, as Pillow does), once, on load. A folder, and an array
that must be converted and is larger than the memory limit, are decoded once into a cache file
(``~/.cache/pyro-vae/images/``, keyed by the source's files and the transform) that later runs read
directly; a large uint8 array that needs no conversion is read where it lies, batch by batch.
"""

from __future__ import annotations

from pathlib import Path

from ..config import NAMED_SOURCES, Config
from ..errors import PyroVAEError
from .arrays import array_images, read_npy, read_npz
from .common import Source, convert, transformed
from .folders import read_folder
from .named import DEBIAN_FASHION_MNIST, FASHION_FILES, fashion_root, read_mnist_like, read_torchvision

__all__ = ["DEBIAN_FASHION_MNIST", "FASHION_FILES", "Source", "array_images", "convert", "fashion_root", "read_source"]


def read_source(config: Config, root: Path) -> Source:
    """The source ``config.dataset`` names, after ``--image-size`` and ``--channels``; named sources
    under the data ``root``."""
    if config.dataset in ("mnist", "fashion-mnist"):
        return transformed(config, read_mnist_like(config.dataset, root))
    if config.dataset in ("cifar10", "svhn"):
        return transformed(config, read_torchvision(config.dataset, root))
    path = Path(config.dataset).expanduser()
    if not path.exists():
        raise PyroVAEError(f"--dataset {config.dataset}: no such folder or file, and not one of "
                           f"{', '.join(NAMED_SOURCES)}")  # fmt: skip
    if path.is_dir():
        return read_folder(path, config)
    if path.suffix.lower() == ".npy":
        return read_npy(path, config)
    if path.suffix.lower() == ".npz":
        return transformed(config, read_npz(path))
    raise PyroVAEError(f"--dataset {path}: a file must be a .npy or .npz array (or give a folder of images)")
