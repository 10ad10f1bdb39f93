"""Folders of image files (whatever Pillow reads): flat (no labels), or one subfolder per class
(torchvision's ImageFolder convention: the classes are the sorted subfolder names); a folder whose
subfolders are exactly ``train`` and ``test`` gives its own test split, each of them flat or by class.
Images are taken in the order of their file names (ties by class), decoded once into the cache
(``storage.py``) that later runs read directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import Config, image_size_of
from ..errors import PyroVAEError
from ..storage import DiskImages, cache_key, cache_path, write_cache
from .common import CHUNK, Source, convert


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


def read_folder(folder: Path, config: Config) -> Source:
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
    splits, names = [], []
    for files, labels, _ in listings:
        files_seen = [(str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        key = cache_key(folder, files_seen, image_size_of(config), config.channels)
        cache = cache_path(key)
        if not cache.exists():
            write_cache(cache, len(files), shape, _decoded_chunks(files, shape))
        splits += [DiskImages(cache), None if labels is None else torch.from_numpy(labels)]
        names.append(tuple(f.relative_to(folder).as_posix() for f in files))
    if len(splits) == 2:
        splits += [None, None]
        names.append(None)
    return Source(*splits, shape, listings[0][2], *names)


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
