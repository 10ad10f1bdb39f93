"""A small CNN classifier of a labelled source's images: it judges whether the conditional VAE draws
the class asked for, and its features are the space FID is measured in.

A two-layer CNN trained on the grey (not binarized) training images, since samples are decoder
means in [0, 1]. On MNIST two epochs give about 98.7% test accuracy in about a minute on two CPU
cores; a sample accuracy is only as trustworthy as that. Sized from the image shape: its last
feature map is pooled to 7 x 7 whatever the size (for 28 x 28 that pooling is the identity), so
FID always compares 3,136 features.

The MNIST judge ships with the package (``judges/mnist-cnn.pt``, its sha256 below), trained once by
``python -m pyro_vae.classifier --data-dir DIR`` with the recipe here: a FID or a sample accuracy of
the same weights is then the same number on any machine, where a classifier retrained on each
machine moved the FID of one run by a unit (97.90, 98.14, 98.86). Other sources train theirs on
first use and cache it per user. Every judge carries the sha256 of its weights file, which
``evaluate`` prints beside the FID.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from .config import NAMED_SOURCES
from .data import Split, batches, load_data

NAMED_DATASETS = tuple(NAMED_SOURCES)

MIN_SIDE = 4  # two 2x2 poolings need at least this many pixels a side


SHIPPED_JUDGES = {  # source -> (file in the package, sha256 of that file)
    "mnist": ("judges/mnist-cnn.pt", "4339420e0ef28aa44c144fca46a9635fe6b69403909a80143d54b80172b58821"),
}


def make_classifier(image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    channels = image_shape[0]
    return nn.Sequential(
        nn.Unflatten(1, tuple(image_shape)),
        nn.Conv2d(channels, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(64 * 7 * 7, num_classes),
    )  # fmt: skip


def classifier_available(config) -> str | None:
    """None if the project's classifier can judge ``config``'s images, else why not (one line)."""
    if not config.class_names:
        return f"{config.dataset} has no labels to train the feature classifier on"
    if min(config.image_shape[1:]) < MIN_SIDE:
        return f"images smaller than {MIN_SIDE}x{MIN_SIDE} are too small for the feature classifier"
    return None


def train_classifier(train: Split, image_shape: tuple[int, int, int], num_classes: int, epochs: int = 2,
                     batch_size: int = 128, seed: int = 0) -> nn.Module:  # fmt: skip
    """Plain PyTorch cross-entropy training with Adam."""
    torch.manual_seed(seed)
    classifier = make_classifier(image_shape, num_classes).to(train.target)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    for _ in range(epochs):
        for index in batches(len(train), batch_size, train.labels.device, shuffle=True):
            x = train.batch(index)
            loss = nn.functional.cross_entropy(classifier(x), train.labels[index].to(x.device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return classifier.eval()


def flat_images(images: torch.Tensor) -> torch.Tensor:
    """Images as ``sample_images`` gives them, (n, H, W) or (n, H, W, 3), or already flat
    (n, C*H*W) -> flat, channels first."""
    if images.dim() == 4:
        images = images.permute(0, 3, 1, 2)
    return images.reshape(images.shape[0], -1)


@torch.no_grad()
def accuracy(classifier: nn.Module, images: torch.Tensor | Split, labels: torch.Tensor | None = None) -> float:
    """Fraction of ``images`` (a split, or a tensor as ``flat_images`` reads it) classified as ``labels``."""
    device = next(classifier.parameters()).device
    if isinstance(images, Split):
        chunks = list(images.chunks(1000))
        logits = torch.cat([classifier(x.to(device)) for x, _ in chunks])
        labels = torch.cat([chunk_labels for _, chunk_labels in chunks])
    else:
        logits = torch.cat([classifier(flat_images(chunk).to(device)) for chunk in images.split(1000)])
    return (logits.argmax(-1) == labels.to(device)).float().mean().item()


@torch.no_grad()
def digit_accuracy(classifier: nn.Module, vae, samples_per_digit: int = 200, seed: int = 0) -> list[float]:
    """For each class d, the fraction of ``samples_per_digit`` draws with ``digit=d`` classified as d."""
    from .sampling import sample_images

    return [
        accuracy(
            classifier,
            sample_images(vae, n=samples_per_digit, digit=digit, seed=seed + digit)[0],
            torch.full((samples_per_digit,), digit),
        )
        for digit in range(vae.config.num_classes)
    ]


def shipped_judge(config) -> tuple[Path, str] | None:
    """(path, sha256) of the judge that ships for ``config``'s images: a named source in its stored
    shape (any split of it: the judge is trained on the source's whole training split), else None."""
    if config.dataset not in SHIPPED_JUDGES or tuple(config.image_shape) != NAMED_SOURCES[config.dataset][0]:
        return None
    name, sha256 = SHIPPED_JUDGES[config.dataset]
    return Path(__file__).parent / name, sha256


def classifier_cache_path(config) -> Path:
    """Where a source without a shipped judge caches the one it trains: a name keyed by what decides
    the classifier's training images and shape."""
    from .storage import default_cache_dir

    described = {key: getattr(config, key) for key in ("dataset", "image_shape", "class_names", "test_fraction",
                                                       "validation", "subset")}  # fmt: skip
    if config.dataset not in NAMED_DATASETS:
        described["dataset"] = str(Path(config.dataset).expanduser().resolve())
    digest = hashlib.sha256(json.dumps(described, default=list, sort_keys=True).encode()).hexdigest()[:16]
    return default_cache_dir() / "classifier" / f"source-{digest}-cnn.pt"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_or_train_classifier(config, device: torch.device, echo=None, data_dir: str | None = None) -> nn.Module:
    """The judge of ``config``'s images (the run's config: its shape and classes size the network), on
    ``device``: the shipped one where there is one, its file checked against its sha256; else trained
    on the source's grey training split on first use, then loaded from the per-user cache (weights
    only, written atomically). The judge's ``sha256`` attribute is that of its weights file."""
    from .errors import PyroVAEError

    shape, classes = tuple(config.image_shape), config.num_classes
    classifier = make_classifier(shape, classes)
    shipped = shipped_judge(config)
    if shipped is not None:
        path, expected = shipped
        found = file_sha256(path) if path.is_file() else "no file"
        if found != expected:
            raise PyroVAEError(f"the shipped judging classifier {path} has sha256 {found}, expected {expected}; "
                               f"reinstall pyro-vae")  # fmt: skip
        return _loaded_judge(classifier, path, device)
    path = classifier_cache_path(config)
    if path.exists():
        try:
            return _loaded_judge(classifier, path, device)
        except (PyroVAEError, KeyError):
            pass  # a damaged cache is simply rebuilt
    if echo is not None:
        echo(f"training the {config.dataset} classifier once (cached in {path})")
    train = load_data(config, device, binarize=False, data_dir=data_dir).train
    classifier = train_classifier(train, shape, classes)
    save_judge(classifier, path)
    classifier.sha256 = file_sha256(path)
    return classifier


def _loaded_judge(classifier: nn.Module, path: Path, device: torch.device) -> nn.Module:
    """``classifier`` with the weights of ``path`` (weights only), its ``sha256`` that file's, on ``device``."""
    from .checkpoint import load_checkpoint, load_weights

    load_weights(classifier, load_checkpoint(path, map_location="cpu")["model"], path)
    classifier.sha256 = file_sha256(path)
    return classifier.to(device).eval()


def save_judge(classifier: nn.Module, path: Path) -> None:
    from .checkpoint import save_checkpoint

    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"model": {name: value.cpu() for name, value in classifier.state_dict().items()}})


def main(arguments: list[str] | None = None) -> None:
    """Train the shipped MNIST judge with the recipe above and write it into the package; prints its
    sha256 (for ``SHIPPED_JUDGES``) and its test accuracy."""
    import argparse

    import torch

    from .config import Config

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", required=True, help="the folder holding MNIST/raw/")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / SHIPPED_JUDGES["mnist"][0])
    options = parser.parse_args(arguments)
    config = Config(dataset="mnist", data_dir=options.data_dir)
    data = load_data(config, torch.device("cpu"), binarize=False)
    classifier = train_classifier(data.train, tuple(config.image_shape), config.num_classes)
    save_judge(classifier, options.out)
    print(f"{options.out}: sha256 {file_sha256(options.out)}, MNIST test accuracy {accuracy(classifier, data.test):.4f}")


if __name__ == "__main__":
    main()
