"""Arrays of images: a ``.npy`` (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3, uint8 0-255 or
float in [0, 1]; or a ``.npz`` holding ``images`` like that and optionally ``labels`` (N,),
``class_names``, and ``test_images`` (with ``test_labels`` where there are labels) as its own test split.
A large uint8 ``.npy`` that needs no conversion is read where it lies, batch by batch; one that must be
converted is converted once into the cache (``storage.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..config import Config, image_size_of
from ..errors import PyroVAEError
from ..storage import DiskImages, cache_key, cache_path, memory_limit, npy_header, write_cache
from .common import CHUNK, Source, convert, target_shape, transformed


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


def read_npy(path: Path, config: Config) -> Source:
    """A .npy of images: in memory when small, else read by batch from disk (where it lies if it
    is uint8 in a flat layout and needs no conversion, else from a converted cache file)."""
    shape, fortran_order, dtype, offset = npy_header(path)
    layout = _layout(shape, str(path))
    _check_dtype(dtype, str(path))
    if shape[0] == 0:
        raise PyroVAEError(f"{path} holds no images (shape {tuple(shape)})")
    stored = _shape_of(shape, layout)
    target = target_shape(config, stored)
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if os.path.getsize(path) < expected:
        raise PyroVAEError(f"{path} is truncated: {os.path.getsize(path)} bytes, its header promises {expected}")
    if fortran_order:
        images = _as_nchw_uint8(np.load(path), layout, str(path)).contiguous()
        return transformed(config, Source(images, None, None, None, stored, ()))
    if shape[0] * int(np.prod(target)) <= memory_limit():  # converted chunk by chunk into one tensor
        images = torch.empty((shape[0], *target), dtype=torch.uint8)
        for start, chunk in zip(range(0, shape[0], CHUNK), _npy_chunks(path, shape, dtype, offset, layout, config)):
            images[start : start + len(chunk)] = chunk
        return Source(images, None, None, None, target, ())
    if dtype == np.uint8 and layout in ("NHW", "NCHW") and target == stored:
        return Source(DiskImages(path), None, None, None, stored, ())
    key = cache_key(path, [(path.name, os.path.getsize(path), os.stat(path).st_mtime_ns)], image_size_of(config),
                    config.channels)  # fmt: skip
    cache = cache_path(key)
    if not cache.exists():
        write_cache(cache, shape[0], target, _npy_chunks(path, shape, dtype, offset, layout, config))
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


def read_npz(path: Path) -> Source:
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


def array_images(images, where: str = "images") -> torch.Tensor:
    """An array or tensor of images in memory, laid out and typed as a ``.npy`` source may be, as
    uint8 (N, C, H, W)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    return _npz_images(np.asarray(images), where)[0]
