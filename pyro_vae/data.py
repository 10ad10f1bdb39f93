"""The images a run trains on, from any source, as uint8 pixels that become floats per batch.

A source (``Config.dataset``) is read once by ``sources`` into an array of shape (N, C, H, W),
uint8, with its labels and class names where it has them. This module cuts it into splits and
serves batches:

- train / test: the source's own test split where it has one (MNIST, Fashion-MNIST, CIFAR-10,
  SVHN), else ``test_fraction`` of its images held out with a fixed seed; ``validation`` more
  training images held out the same way; ``subset`` keeps the first N images of each split of the
  source. The same configuration always gives the same images in each split, so ``evaluate``,
  ``compare`` and ``leaderboard`` score exactly what training held out.
- A split is flat, (N, C*H*W), uint8 (a quarter of float32), on the training device when it fits
  in ``memory_limit()`` bytes; a larger one stays in its file on disk (``DiskImages``) and only
  the rows of the batches asked for are read. ``Split.batch(index)`` gathers the
  rows and turns them into floats in [0, 1] on the device: one conversion per batch, nothing per
  image in Python.
- Bernoulli likelihood: the held-out splits are binarized once with a fixed seed (stored as 0 and
  255), the training batches afresh at every step (dynamic binarization).

Where the data and caches live, and the files on disk, are ``storage.py``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import NAMED_SOURCES, Config
from .errors import PyroVAEError
from .likelihoods import likelihood_for
from .sources import read_source
from .storage import DiskImages, memory_limit, resolve_data_root

TEST_BINARIZATION_SEED = 1234  # fixed, so that test figures compare between runs
SPLIT_SEED = 0  # which images a source without a test split holds out, and which --validation takes
CHUNK_VALUES = 1 << 20  # pixels per chunk of a pass over a split: 1,000 MNIST images, 85 of 64x64x3


@dataclass
class Split:
    """One split: ``images`` (N, C*H*W), uint8 0-255 on the device, a ``DiskImages`` on disk, or
    (for tests and callers with their own data) float in [0, 1]; ``labels`` (N,) int64, -1 where the
    source has no labels."""

    images: torch.Tensor | DiskImages
    labels: torch.Tensor
    device: torch.device | None = None  # where batches go; the images' own device when None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def target(self) -> torch.device:
        return self.device or (self.images.device if isinstance(self.images, torch.Tensor) else torch.device("cpu"))

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """The images at ``index`` as float32 in [0, 1] on the device."""
        if isinstance(self.images, DiskImages):
            rows = self.images.rows(index).to(self.target, non_blocking=True)
        else:
            rows = self.images[index.to(self.images.device)].to(self.target)
        return rows.float().div_(255) if rows.dtype == torch.uint8 else rows

    def chunks(self, size: int = 1000):
        """(images, labels) in order, ``size`` at a time (fewer for large images: at most
        ``CHUNK_VALUES`` pixels, so a pass over big colour images holds what one over MNIST holds),
        images as floats on the device."""
        for index in self.index_chunks(size):
            yield self.batch(index), self.labels[index.to(self.labels.device)]

    def index_chunks(self, size: int = 1000) -> list[torch.Tensor]:
        """The index tensors ``chunks`` takes, in order."""
        size = max(1, min(size, CHUNK_VALUES // max(1, self.images.shape[1])))
        return list(batches(len(self), size, self.target, shuffle=False))

    def floats(self) -> torch.Tensor:
        """The whole split as floats (small splits: figures and tests)."""
        return self.batch(torch.arange(len(self), device=self.target))

    def take(self, index: torch.Tensor) -> Split:
        """The images at ``index`` (a new split of the same storage)."""
        images = self.images.select(index.cpu().numpy()) if isinstance(self.images, DiskImages) else self.images[index.to(self.images.device)]
        return Split(images, self.labels[index.to(self.labels.device)], self.device)


@dataclass
class ImageData:
    """The splits of one source, the image shape and the classes (empty for an unlabelled source)."""

    train: Split
    test: Split  # binarized once, with a fixed seed, when the likelihood is Bernoulli
    binarize_train: bool  # draw fresh binary pixels for every training batch (dynamic binarization)
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...] = ()
    validation: Split | None = None  # --validation: held out of the training images, binarized like test
    labeled: Split | None = None  # semi-supervised: the training images whose labels are kept

    @property
    def held_out(self) -> Split:
        """What each epoch reports on: the validation split if there is one, else the test split."""
        return self.validation if self.validation is not None else self.test

    def train_batch(self, index: torch.Tensor, split: Split | None = None) -> torch.Tensor:
        """Training images at ``index`` as floats on the device, freshly binarized for Bernoulli."""
        x = (split or self.train).batch(index)
        return binarize(x) if self.binarize_train else x


def binarize(images: torch.Tensor) -> torch.Tensor:
    """One Bernoulli draw per pixel, x ~ Bernoulli(grey level): u < p for u ~ U(0, 1) is 1 with
    probability p. Twice as fast on the CPU as ``torch.bernoulli``. The global generator, so that
    resume replays it."""
    return (torch.rand_like(images) < images).to(images.dtype)


def binarize_fixed(split: Split) -> Split:
    """The split binarized once with ``TEST_BINARIZATION_SEED``, kept as uint8 0 or 255: in memory,
    one draw over the whole split in order (the numbers every committed MNIST result was scored on);
    a split on disk, each image with its own seeded generator, so no access order matters."""
    if isinstance(split.images, DiskImages):
        return Split(_BinarizedImages(split.images), split.labels, split.device)
    generator = torch.Generator().manual_seed(TEST_BINARIZATION_SEED)
    grey = split.images.cpu().float() / 255 if split.images.dtype == torch.uint8 else split.images.cpu()
    binary = torch.bernoulli(grey, generator=generator).to(torch.uint8).mul_(255)
    return Split(binary.to(split.images.device), split.labels, split.device)


class _BinarizedImages(DiskImages):
    """A split on disk whose rows come binarized, image n by a generator seeded with (seed, n)."""

    def __init__(self, grey: DiskImages):
        self.__dict__.update(grey.__dict__)
        self._grey = grey

    def select(self, rows) -> _BinarizedImages:
        return _BinarizedImages(self._grey.select(rows))

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        grey = self._grey.rows(index).float() / 255
        draws = [torch.rand(grey.shape[1], generator=torch.Generator().manual_seed(TEST_BINARIZATION_SEED * 1_000_003 + int(n)))
                 for n in self._grey.index[index.cpu().numpy()]]  # fmt: skip
        return (torch.stack(draws) < grey).to(torch.uint8).mul_(255)


def load_data(config: Config, device: torch.device, binarize: bool | None = None, data_dir: str | None = None) -> ImageData:
    """The splits ``config`` describes, on ``device``. ``binarize`` defaults to the config's
    likelihood being Bernoulli."""
    binary = likelihood_for(config).data == "binarized" if binarize is None else binarize
    source = read_source(config, resolve_data_root(data_dir or config.data_dir))
    _check_shape(config, source.image_shape)
    train, test = _train_and_test(config, source)
    validation = None
    if config.validation:
        train, validation = _hold_out_validation(config, train)
    splits = [_place(split, device) for split in (train, test, validation) if split is not None]
    if binary:
        splits[1:] = [binarize_fixed(split) for split in splits[1:]]
    train, test, *rest = splits
    return ImageData(train=train, test=test, binarize_train=binary, image_shape=source.image_shape,
                     class_names=source.class_names, validation=rest[0] if rest else None)  # fmt: skip


def load_dataset(dataset: str, data_dir: str | None, device: torch.device, binarize: bool, **options) -> ImageData:
    """Both splits of a source by name or path (``options``: more Config fields, such as
    ``image_size`` or ``subset``); see ``load_data``."""
    config = Config(dataset=dataset, data_dir=data_dir, likelihood="bernoulli" if binarize else "normal", **options)
    return load_data(config, device, binarize=binarize)


def load_mnist(data_dir: str | None, device: torch.device, binarize: bool) -> ImageData:
    return load_dataset("mnist", data_dir, device, binarize)


def _train_and_test(config: Config, source) -> tuple[Split, Split]:
    """The source's own splits, or a seeded ``test_fraction`` of it held out; ``subset`` first."""
    train = _subset(_split_of(source.train_images, source.train_labels), config.subset)
    if source.test_images is not None:
        return train, _subset(_split_of(source.test_images, source.test_labels), config.subset)
    kept, held_out = _held_out(config, len(train))
    return train.take(kept), train.take(held_out)


def _held_out(config: Config, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out) indices, each sorted, of a source without its own test split."""
    held_out = max(1, round(count * config.test_fraction))
    if held_out >= count:
        raise PyroVAEError(f"{config.dataset} has {count} images: too few to hold out a test split; "
                           f"bring more images or lower --test-fraction")  # fmt: skip
    order = torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return order[held_out:].sort().values, order[:held_out].sort().values


def load_split(config: Config, which: str, device: torch.device, data_dir: str | None = None) -> tuple[Split, list | None]:
    """One split of ``config.dataset`` whole, for use image by image (encode, reconstruct, score), and
    a folder's file names in its order (else None). ``which``: ``test`` and ``train`` as training cuts
    them (``--validation`` and ``--subset`` aside: every image of the split), ``all`` every image (a
    source's own train then test split; else the source in its order), ``auto`` the test split of a
    source that has its own, else all. Binarized once with the fixed
    seed for a Bernoulli likelihood, as ``evaluate`` binarizes the test split."""
    source = read_source(config, resolve_data_root(data_dir or config.data_dir))
    _check_shape(config, source.image_shape)
    whole = _split_of(source.train_images, source.train_labels)
    names = list(source.train_names) if source.train_names is not None else None
    if source.test_images is not None:
        parts = {"train": [(whole, names)], "test": [(_split_of(source.test_images, source.test_labels),
                 list(source.test_names) if source.test_names is not None else None)]}  # fmt: skip
        parts["all"] = parts["train"] + parts["test"]
    else:
        kept, held_out = _held_out(config, len(whole))
        parts = {"all": [(whole, names)], **{key: [(whole.take(index), names and [names[i] for i in index.tolist()])]
                 for key, index in (("train", kept), ("test", held_out))}}  # fmt: skip
    which = ("test" if source.test_images is not None else "all") if which == "auto" else which
    placed = [(_place(split, device), split_names) for split, split_names in parts[which]]
    split = placed[0][0] if len(placed) == 1 else _joined([split for split, _ in placed], config.dataset)
    names = None if any(split_names is None for _, split_names in placed) else sum((n for _, n in placed), [])
    binary = likelihood_for(config).data == "binarized"
    return (binarize_fixed(split) if binary else split), names


def _joined(splits: list[Split], dataset: str) -> Split:
    if any(isinstance(split.images, DiskImages) for split in splits):
        raise PyroVAEError(f"{dataset} is larger than the memory limit: take --split train and --split test one "
                           f"at a time")  # fmt: skip
    return Split(torch.cat([split.images for split in splits]), torch.cat([split.labels for split in splits]))


def _check_shape(config: Config, shape: tuple[int, int, int]) -> None:
    if config.image_shape is not None and tuple(config.image_shape) != shape:
        raise PyroVAEError(
            f"{config.dataset} now gives images of shape {list(shape)} (C, H, W), but the run was "
            f"trained on {list(config.image_shape)}; pass the run's --image-size and --channels, or retrain"
        )  # fmt: skip


def _hold_out_validation(config: Config, train: Split) -> tuple[Split, Split]:
    if config.validation >= len(train):
        raise PyroVAEError(f"--validation {config.validation} is not smaller than the {len(train)} training images; "
                           f"hold out fewer")  # fmt: skip
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(SPLIT_SEED + 1))
    return train.take(order[config.validation :].sort().values), train.take(order[: config.validation].sort().values)


def _split_of(images, labels) -> Split:
    """A CPU split of a source's (N, C, H, W) uint8 images: a tensor, or a file on disk."""
    if isinstance(images, DiskImages):
        flat = images
    else:
        flat = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        flat = flat.reshape(flat.shape[0], -1)
    count = len(flat)
    labels = torch.full((count,), -1, dtype=torch.int64) if labels is None else torch.as_tensor(labels).to(torch.int64)
    return Split(flat, labels)


def _subset(split: Split, subset: int | None) -> Split:
    if subset is None or subset >= len(split):
        return split
    return split.take(torch.arange(subset))


def _place(split: Split, device: torch.device) -> Split:
    """On ``device`` if the split fits the memory limit (read whole from its file), else left on
    disk with its batches sent to ``device``."""
    if isinstance(split.images, DiskImages):
        if split.images.nbytes > memory_limit():
            return Split(split.images, split.labels.to(device), device)
        whole = split.images.rows(torch.arange(len(split)))
        return Split(whole.to(device), split.labels.to(device))
    return Split(split.images.to(device, torch.uint8), split.labels.to(device))


def scored_images(config: Config) -> tuple:
    """What decides a run's test images: runs that agree on this are scored on the same images."""
    source = config.dataset if config.dataset in NAMED_SOURCES else str(Path(config.dataset).expanduser().resolve())
    return (source, tuple(config.image_shape or ()), config.test_fraction, config.subset, config.likelihood == "bernoulli")


def balanced_labels(labels: torch.Tensor, count: int, seed: int, num_classes: int) -> torch.Tensor:
    """Indices of ``count`` training images, ``count // num_classes`` of each class and one more of
    each of the first ``count % num_classes`` classes, drawn by ``seed`` (its own generator, so the
    choice depends on nothing else), sorted."""
    if count < num_classes:
        raise PyroVAEError(f"--labels {count} leaves classes {count} to {num_classes - 1} without a labeled image; "
                           f"use at least {num_classes}")  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    chosen = []
    for digit in range(num_classes):
        wanted = count // num_classes + (1 if digit < count % num_classes else 0)
        members = (labels == digit).nonzero().squeeze(1)
        if len(members) < wanted:
            smallest = int(torch.bincount(labels[labels >= 0], minlength=num_classes).min())
            raise PyroVAEError(
                f"--labels {count} asks for {wanted} images of class {digit}, which has only {len(members)} "
                f"training images; use at most {num_classes * smallest}"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:wanted]])
    return torch.cat(chosen).sort().values


def keep_labels(data: ImageData, index: torch.Tensor) -> ImageData:
    """The semi-supervised split: the images at ``index`` keep their labels (``data.labeled``), the
    rest of the training split becomes the unlabeled ``data.train`` (its labels stay on the tensor for
    the figures; training never reads them)."""
    unlabeled = torch.ones(len(data.train), dtype=torch.bool)
    unlabeled[index] = False
    labeled = data.train.take(index)
    rest = data.train.take(unlabeled.nonzero().squeeze(1))
    return ImageData(train=rest, test=data.test, binarize_train=data.binarize_train, image_shape=data.image_shape,
                     class_names=data.class_names, validation=data.validation, labeled=labeled)  # fmt: skip


def batches(num_items: int, batch_size: int, device: torch.device, shuffle: bool):
    """Index tensors that cover ``range(num_items)`` in order or in a fresh random order."""
    if shuffle:
        order = torch.randperm(num_items, device=device)
    else:
        order = torch.arange(num_items, device=device)
    return order.split(batch_size)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).to(torch.float32)
