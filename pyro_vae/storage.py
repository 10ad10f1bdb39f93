"""Storage primitives under ``sources`` and ``data``: where data and caches live, how much a split
may take in memory, uint8 ``.npy`` files read by row (``DiskImages``), and the cache of decoded images.

A leaf module: it imports nothing else of the package but ``errors``, so that the readers of sources
and the splits of ``data`` can both build on it without importing each other.

The data root is chosen by, in order: the explicit ``data_dir`` (``--data-dir``), the environment
variable ``PYRO_VAE_DATA``, and a per-user cache directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from .errors import PyroVAEError

DEFAULT_MEMORY_LIMIT = 1 << 30  # a split larger than 1 GiB of uint8 stays on disk, read by batch
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pyro-vae"


def resolve_data_root(data_dir: str | None = None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("PYRO_VAE_DATA"):
        return Path(os.environ["PYRO_VAE_DATA"]).expanduser()
    return default_cache_dir() / "data"


def memory_limit() -> int:
    """Bytes of uint8 pixels a split may take on the device; ``PYRO_VAE_MEMORY_LIMIT`` (bytes, or
    with a K, M or G suffix) overrides the default 1 GiB."""
    text = os.environ.get("PYRO_VAE_MEMORY_LIMIT", "").strip().upper()
    if not text:
        return DEFAULT_MEMORY_LIMIT
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
    try:
        return int(float(text.rstrip("KMG")) * scale)
    except ValueError:
        raise PyroVAEError(f"PYRO_VAE_MEMORY_LIMIT must be bytes such as 500M or 2G, got {text!r}") from None


def npy_header(path: Path):
    """(shape, fortran_order, dtype, offset of the data) of a .npy file, read without loading it."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = reader(handle)
            return shape, fortran_order, dtype, handle.tell()
    except (ValueError, OSError) as error:
        raise PyroVAEError(f"{path} is not a readable .npy array: {error}".splitlines()[0]) from None


class DiskImages:
    """Rows of a uint8 ``.npy`` file on disk, (N, D), read on demand with positional reads.

    ``rows(index)`` reads just the rows asked for (in file order, each straight into the batch's
    buffer), so a process that trains from the file holds a batch, not the array; the operating
    system's page cache keeps what fits, outside the process. Not a memory map: with one, every
    page touched stays mapped into the process, with its neighbours (20 random batches of 256
    64x64x3 rows from a 1 GB file left 809 MB of it resident, measured), and the process would
    appear to hold the array after all."""

    def __init__(self, path: Path, rows: np.ndarray | None = None):
        self.path = Path(path)
        shape, fortran_order, dtype, self.offset = npy_header(self.path)
        if dtype != np.uint8 or fortran_order:
            raise PyroVAEError(f"{self.path} is not a C-ordered uint8 array")
        self.full_shape = shape
        self._file = open(self.path, "rb")  # closed with the last selection that shares it
        self.index = np.arange(shape[0]) if rows is None else np.asarray(rows)
        self.shape = (len(self.index), math.prod(shape[1:]))
        self.nbytes = self.shape[0] * self.shape[1]

    def select(self, rows) -> DiskImages:
        """The same file, restricted to ``rows`` of this selection."""
        chosen = DiskImages.__new__(DiskImages)
        chosen.__dict__.update(self.__dict__)
        chosen.index = self.index[np.asarray(rows)]
        chosen.shape = (len(chosen.index), self.shape[1])
        chosen.nbytes = chosen.shape[0] * self.shape[1]
        return chosen

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        wanted = self.index[index.cpu().numpy()]
        width, descriptor = self.shape[1], self._file.fileno()
        gathered = np.empty((len(wanted), width), dtype=np.uint8)
        for position in np.argsort(wanted, kind="stable"):  # forwards through the file
            os.preadv(descriptor, [gathered[position]], self.offset + int(wanted[position]) * width)
        return torch.from_numpy(gathered)

    def __len__(self) -> int:
        return self.shape[0]


def cache_key(source: Path, files: list[tuple], image_size: tuple[int, int] | None, channels: int | None) -> str:
    """The name of a source's decoded images: its path, its files' (name, size, mtime) and the transform."""
    described = {"version": CACHE_VERSION, "source": str(source.resolve()), "files": files,
                 "image_size": image_size, "channels": channels}  # fmt: skip
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:24]


def cache_path(key: str) -> Path:
    return default_cache_dir() / "images" / f"{key}.npy"


def write_cache(path: Path, count: int, shape: tuple[int, int, int], chunks) -> None:
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
