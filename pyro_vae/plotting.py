"""Figures, with matplotlib's file-only backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .sampling import sample_images  # noqa: E402


def sample_grid(images, columns: int):
    """(n, 28, 28) -> one (rows*28, columns*28) array, row-major."""
    rows = -(-images.shape[0] // columns)
    grid = images.new_zeros(rows * 28, columns * 28)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * 28 : (row + 1) * 28, column * 28 : (column + 1) * 28] = image
    return grid.numpy()


def compare_figure(runs, records, path: Path, seed: int = 0) -> None:
    """Top: test ELBO per epoch, one panel per likelihood (their nats do not compare).
    Bottom: a grid of 36 prior samples per variant, titled with its bits per dimension."""
    likelihoods = list(dict.fromkeys(record["likelihood"] for record in records))
    figure = plt.figure(figsize=(4 * max(2, len(runs), len(likelihoods)), 8), constrained_layout=True)
    top, bottom = figure.subfigures(2, 1, height_ratios=[1, 1.2])
    curves = dict(zip(likelihoods, top.subplots(1, len(likelihoods), squeeze=False)[0]))
    for run, record in zip(runs, records):
        axis = curves[record["likelihood"]]
        epochs = [m["epoch"] for m in run.metrics]
        axis.plot(epochs, [m["test_elbo"] for m in run.metrics], marker=".", label=record["variant"])
    for likelihood, axis in curves.items():
        axis.set_xlabel("epoch")
        axis.set_ylabel("test ELBO (nats per image)")
        axis.set_title(f"{likelihood} likelihood")
        axis.legend()
    panels = bottom.subplots(1, len(runs), squeeze=False)[0]
    for panel, run, record in zip(panels, runs, records):
        panel.imshow(sample_grid(sample_images(run.vae, n=36, seed=seed)[0], 6), cmap="gray", vmin=0, vmax=1)
        panel.set_title(f"{record['variant']}\n{record['bits_per_dim']:.3f} bits/dim")
        panel.axis("off")
    figure.suptitle("pyro-vae compare: test ELBO per epoch (top) and prior samples (bottom)")
    figure.savefig(path, dpi=100)
    plt.close(figure)
