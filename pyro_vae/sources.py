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

import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import NAMED_SOURCES, Config, image_size_of
from .data import MNIST_SHAPE, DiskImages, default_cache_dir, memory_limit, npy_header
from .errors import PyroVAEError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CACHE_VERSION = 1
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


def read_source(config: Config, root: Path) -> Source:
    if config.dataset in ("mnist", "fashion-mnist"):
        return _transformed(config, _read_mnist_like(config.dataset, root))
    if config.dataset in ("cifar10", "svhn"):
        return _transformed(config, _read_torchvision(config.dataset, root))
    path = Path(config.dataset).expanduser()
    if not path.exists():
        raise PyroVAEError(f"--dataset {config.dataset}: no such folder or file, and not one of "
                           f"{', '.join(NAMED_SOURCES)}")  # fmt: skip
    if path.is_dir():
        return _read_folder(path, config)
    if path.suffix.lower() == ".npy":
        return _read_npy(path, config)
    if path.suffix.lower() == ".npz":
        return _transformed(config, _read_npz(path))
    raise PyroVAEError(f"--dataset {path}: a file must be a .npy or .npz array (or give a folder of images)")


# --- converting ---------------------------------------------------------------------------------


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


def _target_shape(config: Config, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    size = image_size_of(config) or shape[1:]
    return (config.channels or shape[0], *size)


def _needs_conversion(config: Config, shape) -> bool:
    return _target_shape(config, tuple(shape)) != tuple(shape)


def _transformed(config: Config, source: Source) -> Source:
    """An in-memory source after ``--image-size`` and ``--channels``."""
    if not _needs_conversion(config, source.image_shape):
        return source
    size, channels = image_size_of(config), config.channels

    def apply(images):
        if images is None:
            return None
        images = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        return torch.cat([convert(chunk, size, channels) for chunk in images.split(CHUNK)])

    return Source(apply(source.train_images), source.train_labels, apply(source.test_images), source.test_labels,
                  _target_shape(config, source.image_shape), source.class_names)  # fmt: skip


# --- torchvision's datasets -----------------------------------------------------------------------


def _read_mnist_like(dataset: str, root: Path) -> Source:
    """MNIST or Fashion-MNIST through torchvision's reader, 60,000 training and 10,000 test images."""
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
    expected = 60000 if train else 10000
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


def _read_mnist(root: Path, train: bool):
    import torchvision  # imported here: it is slow to import and only data loading needs it

    return _offline_or_download(
        "MNIST", root / "MNIST" / "raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
        "and t10k-labels-idx1-ubyte (or the same .gz)",
        lambda download: torchvision.datasets.MNIST(str(root), train=train, download=download),
    )  # fmt: skip


def _read_fashion(root: Path, train: bool):
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


def _read_torchvision(dataset: str, root: Path) -> Source:
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


# --- arrays -------------------------------------------------------------------------------------


def _layout(shape: tuple[int, ...], where: str) -> str:
    """'NHW', 'NHWC' or 'NCHW' for an images array of ``shape``."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) == 4 and shape[3] in (1, 3):
        return "NHWC"
    if len(shape) == 4 and shape[1] in (1, 3):
        return "NCHW"
    raise PyroVAEError(f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3, "
                       f"got shape {tuple(shape)}")  # fmt: skip


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype != np.uint8 and dtype.kind != "f":
        raise PyroVAEError(f"{where}: images must be uint8 (0-255) or float (0 to 1), got {dtype}")


def _as_nchw_uint8(chunk: np.ndarray, layout: str, where: str) -> torch.Tensor:
    """One chunk of an array in its layout -> uint8 (n, C, H, W); floats must lie in [0, 1]."""
    if chunk.dtype.kind == "f":
        if chunk.size and not (np.isfinite(chunk).all() and chunk.min() >= 0 and chunk.max() <= 1):
            raise PyroVAEError(f"{where}: float images must lie in [0, 1], found values from "
                               f"{np.nanmin(chunk):g} to {np.nanmax(chunk):g}")  # fmt: skip
        chunk = np.round(chunk * 255).astype(np.uint8)
    tensor = torch.from_numpy(np.array(chunk))  # a copy: a chunk read from bytes is read-only
    if layout == "NHW":
        return tensor.unsqueeze(1)
    return tensor.permute(0, 3, 1, 2) if layout == "NHWC" else tensor


def _shape_of(shape, layout) -> tuple[int, int, int]:
    if layout == "NHW":
        return (1, shape[1], shape[2])
    return (shape[3], shape[1], shape[2]) if layout == "NHWC" else tuple(shape[1:])


def _read_npy(path: Path, config: Config) -> Source:
    """A .npy of images: in memory when small, else read by batch from disk (where it lies if it
    is uint8 in a flat layout and needs no conversion, else from a converted cache file)."""
    shape, fortran_order, dtype, offset = npy_header(path)
    layout = _layout(shape, str(path))
    _check_dtype(dtype, str(path))
    if shape[0] == 0:
        raise PyroVAEError(f"{path} holds no images (shape {tuple(shape)})")
    stored = _shape_of(shape, layout)
    target = _target_shape(config, stored)
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if os.path.getsize(path) < expected:
        raise PyroVAEError(f"{path} is truncated: {os.path.getsize(path)} bytes, its header promises {expected}")
    if fortran_order:
        images = _as_nchw_uint8(np.load(path), layout, str(path)).contiguous()
        return _transformed(config, Source(images, None, None, None, stored, ()))
    if shape[0] * int(np.prod(target)) <= memory_limit():  # converted chunk by chunk into one tensor
        images = torch.empty((shape[0], *target), dtype=torch.uint8)
        for start, chunk in zip(range(0, shape[0], CHUNK), _npy_chunks(path, shape, dtype, offset, layout, config)):
            images[start : start + len(chunk)] = chunk
        return Source(images, None, None, None, target, ())
    if dtype == np.uint8 and layout in ("NHW", "NCHW") and target == stored:
        return Source(DiskImages(path), None, None, None, stored, ())
    key = _cache_key(path, [(path.name, os.path.getsize(path), os.stat(path).st_mtime_ns)], config)
    cache = _cache_path(key)
    if not cache.exists():
        _write_cache(cache, shape[0], target, _npy_chunks(path, shape, dtype, offset, layout, config))
    return Source(DiskImages(cache), None, None, None, target, ())


def _npy_chunks(path: Path, shape, dtype, offset: int, layout: str, config: Config):
    """Converted (n, C, H, W) uint8 chunks of a C-ordered .npy, read with plain reads (no map)."""
    row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
    with open(path, "rb") as handle:
        handle.seek(offset)
        for start in range(0, shape[0], CHUNK):
            rows = min(CHUNK, shape[0] - start)
            chunk = np.frombuffer(handle.read(rows * row_bytes), dtype=dtype).reshape(rows, *shape[1:])
            yield convert(_as_nchw_uint8(chunk, layout, str(path)), image_size_of(config), config.channels)


def _read_npz(path: Path) -> Source:
    try:
        archive = np.load(path, allow_pickle=False)
        names = set(archive.files)
        if "images" not in names:
            raise PyroVAEError(f"{path} holds {sorted(names)}, no 'images' array")
        images = archive["images"]
        labels = archive["labels"] if "labels" in names else None
        class_names = tuple(str(name) for name in archive["class_names"]) if "class_names" in names else None
        test_images = archive["test_images"] if "test_images" in names else None
        test_labels = archive["test_labels"] if "test_labels" in names else None
    except PyroVAEError:
        raise
    except Exception as error:
        raise PyroVAEError(f"{path} is not a readable .npz archive: {type(error).__name__}: {error}".splitlines()[0]) from None
    tensor, shape = _npz_images(images, str(path))
    labels, class_names = _check_labels(labels, images.shape[0], class_names, str(path))
    if test_images is None:
        return Source(tensor, labels, None, None, shape, class_names)
    test_tensor, test_shape = _npz_images(test_images, f"{path} (test_images)")
    if test_shape != shape:
        raise PyroVAEError(f"{path}: test_images are {'x'.join(map(str, test_shape))}, images "
                           f"{'x'.join(map(str, shape))}; both splits need one shape")  # fmt: skip
    if (test_labels is None) != (labels is None):
        raise PyroVAEError(f"{path}: give labels and test_labels together, or neither")
    if test_labels is not None:
        test_labels, _ = _check_labels(test_labels, test_images.shape[0], class_names, f"{path} (test_labels)",
                                       every_class=False)  # fmt: skip
    return Source(tensor, labels, test_tensor, test_labels, shape, class_names)


def _npz_images(images, where: str):
    """One array of an .npz as uint8 (N, C, H, W) and its (C, H, W)."""
    layout = _layout(images.shape, where)
    _check_dtype(images.dtype, where)
    if images.shape[0] == 0:
        raise PyroVAEError(f"{where} holds no images (shape {tuple(images.shape)})")
    tensor = torch.cat([_as_nchw_uint8(images[start : start + CHUNK], layout, where)
                        for start in range(0, images.shape[0], CHUNK)])  # fmt: skip
    return tensor, _shape_of(images.shape, layout)


def _check_labels(labels, count: int, class_names, where: str, every_class: bool = True):
    """(labels as int64, class names): one integer label per image, from 0, every class present
    (a test split, ``every_class`` False, may lack some)."""
    if labels is None:
        if class_names:
            raise PyroVAEError(f"{where} has class_names but no labels")
        return None, ()
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != count:
        raise PyroVAEError(f"{where}: labels must be one per image, shape ({count},), got {tuple(labels.shape)}")
    if labels.dtype.kind not in "iu" or (count and labels.min() < 0):
        raise PyroVAEError(f"{where}: labels must be integers from 0 (class indices), got {labels.dtype} "
                           f"from {labels.min()} to {labels.max()}")  # fmt: skip
    classes = len(class_names) if class_names else int(labels.max()) + 1
    if labels.max() >= classes:
        raise PyroVAEError(f"{where}: label {int(labels.max())} but only {classes} class_names")
    counts = np.bincount(labels, minlength=classes)
    names = class_names or tuple(str(index) for index in range(classes))
    if classes < 2:
        raise PyroVAEError(f"{where}: the labels name one class only; labels need two or more")
    if every_class and (counts == 0).any():
        empty = int(np.flatnonzero(counts == 0)[0])
        raise PyroVAEError(f"{where}: class {names[empty]!r} (label {empty}) has no images")
    return torch.from_numpy(labels.astype(np.int64)), tuple(names)


# --- folders of image files ---------------------------------------------------------------------


def _image_suffixes() -> set[str]:
    from PIL import Image

    return {suffix for suffix, name in Image.registered_extensions().items() if name in Image.OPEN}


def _image_files(folder: Path, suffixes: set[str]) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))  # fmt: skip


def _listing(folder: Path, suffixes: set[str]):
    """(files in order, labels or None, class names) of a flat folder or a class tree."""
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        files = _image_files(folder, suffixes)
        if not files:
            raise PyroVAEError(f"{folder} holds no images (files Pillow reads: .png, .jpg, ...)")
        return files, None, ()
    entries = []
    for label, name in enumerate(classes):
        files = _image_files(folder / name, suffixes)
        if not files:
            raise PyroVAEError(f"class folder {folder / name} holds no images")
        entries += [(file.relative_to(folder / name).as_posix(), label, file) for file in files]
    if len(classes) < 2:
        raise PyroVAEError(f"{folder} has one class folder ({classes[0]}); a class tree needs two or more, "
                           f"or put the images directly in {folder}")  # fmt: skip
    entries.sort(key=lambda entry: entry[:2])
    return [file for *_, file in entries], np.array([label for _, label, _ in entries], dtype=np.int64), tuple(classes)


def _read_folder(folder: Path, config: Config) -> Source:
    suffixes = _image_suffixes()
    subfolders = {entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")}
    if not any(folder.iterdir()):
        raise PyroVAEError(f"{folder} is empty; it must hold images, or one subfolder of images per class")
    parts = [folder / "train", folder / "test"] if subfolders == {"train", "test"} else [folder]
    listings = [_listing(part, suffixes) for part in parts]
    if len(listings) == 2 and listings[0][2] != listings[1][2]:
        raise PyroVAEError(f"{folder}: train/ and test/ have different classes "
                           f"({', '.join(listings[0][2]) or 'none'} against {', '.join(listings[1][2]) or 'none'})")  # fmt: skip
    shape = _folder_shape([file for files, _, _ in listings for file in files], config)
    splits = []
    for files, labels, _ in listings:
        key = _cache_key(folder, [(str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in files], config)
        cache = _cache_path(key)
        if not cache.exists():
            _write_cache(cache, len(files), shape, _decoded_chunks(files, shape))
        splits += [DiskImages(cache), None if labels is None else torch.from_numpy(labels)]
    if len(splits) == 2:
        splits += [None, None]
    return Source(*splits, shape, listings[0][2])


def _folder_shape(files: list[Path], config: Config) -> tuple[int, int, int]:
    """(C, H, W) the images become: --channels, else 3 if any image has colour; --image-size, else
    their one size (mixed sizes are an error without --image-size). Reads headers only."""
    from PIL import Image, UnidentifiedImageError

    grey_modes = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
    sizes, colour = {}, False
    for file in files:
        try:
            with Image.open(file) as image:
                sizes.setdefault(image.size, file)
                colour = colour or image.mode not in grey_modes
        except (UnidentifiedImageError, OSError) as error:
            raise PyroVAEError(f"{file} is not an image Pillow can read ({type(error).__name__})") from None
    size = image_size_of(config)
    if size is None and len(sizes) > 1:
        (first, a), (second, b) = list(sizes.items())[:2]
        raise PyroVAEError(f"images of different sizes ({first[0]}x{first[1]} in {a.name}, {second[0]}x{second[1]} "
                           f"in {b.name}); pass --image-size S or HxW to resize them all")  # fmt: skip
    if size is None:
        width, height = next(iter(sizes))
        size = (height, width)
    return (config.channels or (3 if colour else 1), *size)


def _decoded_chunks(files: list[Path], shape: tuple[int, int, int]):
    """uint8 (n, C, H, W) chunks of the decoded files, each converted and resized to ``shape``."""
    from PIL import Image

    mode = "L" if shape[0] == 1 else "RGB"
    for start in range(0, len(files), CHUNK):
        chunk = []
        for file in files[start : start + CHUNK]:
            try:
                with Image.open(file) as image:
                    pixels = np.asarray(image.convert(mode))
            except (OSError, ValueError, SyntaxError) as error:
                raise PyroVAEError(f"{file} is truncated or corrupt ({type(error).__name__}: {error})".splitlines()[0]) from None
            tensor = torch.from_numpy(pixels.copy()).reshape(pixels.shape[0], pixels.shape[1], -1).permute(2, 0, 1)
            chunk.append(convert(tensor.unsqueeze(0), shape[1:], None)[0])
        yield torch.stack(chunk)


# --- the cache of decoded images ----------------------------------------------------------------


def _cache_key(source: Path, files: list[tuple], config: Config) -> str:
    described = {"version": CACHE_VERSION, "source": str(source.resolve()), "files": files,
                 "image_size": image_size_of(config), "channels": config.channels}  # fmt: skip
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:24]


def _cache_path(key: str) -> Path:
    return default_cache_dir() / "images" / f"{key}.npy"


def _write_cache(path: Path, count: int, shape: tuple[int, int, int], chunks) -> None:
    """A uint8 .npy (count, C, H, W) written chunk by chunk with plain writes (a memory map would
    count the written pages as the process's memory), to a temporary name renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": (count, *shape)}
    written = 0
    try:
        with open(temporary, "wb") as handle:
            np.lib.format.write_array_header_2_0(handle, header)
            for chunk in chunks:
                handle.write(chunk.numpy().tobytes())
                written += chunk.shape[0]
        if written != count:
            raise PyroVAEError(f"decoded {written} images for {path}, expected {count}")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
