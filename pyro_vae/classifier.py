"""A small CNN classifier of a labelled source's images: it judges whether the conditional VAE draws
the class asked for, and its features are the space FID is measured in.

A two-layer CNN trained on the grey (not binarized) training images, since samples are decoder
means in [0, 1]. On MNIST two epochs give about 98.7% test accuracy in about a minute on two CPU
cores; a sample accuracy is only as trustworthy as that. Sized from the image shape: its last
feature map is pooled to 7 x 7 whatever the size (for 28 x 28 that pooling is the identity), so
FID always compares 3,136 features.
"""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn

from .data import Split, batches
from .sources.named import MNIST_SHAPE

MIN_SIDE = 4  # two 2x2 poolings need at least this many pixels a side


def make_classifier(image_shape=MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
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


def train_classifier(train: Split, epochs: int = 2, batch_size: int = 128, seed: int = 0,
                     image_shape=MNIST_SHAPE, num_classes: int = 10) -> nn.Module:  # fmt: skip
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


def classifier_cache_path(dataset: str = "mnist", config=None):
    """``mnist-cnn.pt`` for a named source as stored; for any other source or shape, a name keyed by
    what decides the classifier's training images and shape."""
    from .storage import default_cache_dir

    name = f"{dataset}-cnn.pt"
    if config is not None and (config.dataset not in ("mnist", "fashion-mnist", "cifar10", "svhn") or config.image_size
                               or config.channels or config.subset or config.validation):  # fmt: skip
        described = {key: getattr(config, key) for key in ("dataset", "image_shape", "class_names", "test_fraction",
                                                           "validation", "subset")}  # fmt: skip
        digest = hashlib.sha256(json.dumps(described, default=list, sort_keys=True).encode()).hexdigest()[:16]
        name = f"source-{digest}-cnn.pt"
    return default_cache_dir() / "classifier" / name


def load_or_train_classifier(train: Split, echo=None, dataset: str = "mnist", config=None) -> nn.Module:
    """The classifier that ships with the tool: trained on the source's training split on first
    use, then loaded from the per-user cache (weights only, written atomically). ``config``, where
    given, is the run's: its shape and classes size the network."""
    from .checkpoint import load_checkpoint, load_weights, save_checkpoint
    from .errors import PyroVAEError

    dataset = config.dataset if config is not None else dataset
    shape = tuple(config.image_shape) if config is not None else MNIST_SHAPE
    classes = config.num_classes if config is not None else 10
    path = classifier_cache_path(dataset, config)
    classifier = make_classifier(shape, classes)
    if path.exists():
        try:
            load_weights(classifier, load_checkpoint(path, map_location="cpu")["model"], path)
            return classifier.to(train.target).eval()
        except (PyroVAEError, KeyError):
            pass  # a damaged cache is simply rebuilt
    if echo is not None:
        echo(f"training the {dataset} classifier once (cached in {path})")
    classifier = train_classifier(train, image_shape=shape, num_classes=classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"model": {k: v.cpu() for k, v in classifier.state_dict().items()}})
    return classifier
