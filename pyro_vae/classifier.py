"""A small MNIST digit classifier, used to measure whether the conditional VAE draws the asked digit.

It is trained on the grey (not binarized) training images, since samples are decoder means in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from .data import IMAGE_PIXELS, NUM_CLASSES, Split, batches


def make_classifier(hidden: int = 256) -> nn.Module:
    return nn.Sequential(nn.Linear(IMAGE_PIXELS, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES))


def train_classifier(train: Split, epochs: int = 2, batch_size: int = 128, seed: int = 0) -> nn.Module:
    """Plain PyTorch; two epochs give about 97% test accuracy."""
    torch.manual_seed(seed)
    classifier = make_classifier().to(train.images.device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    for _ in range(epochs):
        for index in batches(len(train), batch_size, train.images.device, shuffle=True):
            loss = nn.functional.cross_entropy(classifier(train.images[index]), train.labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return classifier.eval()


@torch.no_grad()
def accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` (any shape ending in 28x28 or 784) classified as ``labels``."""
    device = next(classifier.parameters()).device
    logits = classifier(images.reshape(-1, IMAGE_PIXELS).to(device))
    return (logits.argmax(-1) == labels.to(device)).float().mean().item()
