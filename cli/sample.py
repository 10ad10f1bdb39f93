"""``pyro-vae sample``: draw images from a trained run's prior."""

from __future__ import annotations

import click

from pyro_vae.config import MAX_SEED, NUM_CLASSES
from pyro_vae.runs import latest_run, load_run
from pyro_vae.sampling import (
    MAX_SAMPLES, check_output_path, default_output_path, grid_columns, sample_images, save_images,
)  # fmt: skip

from .options import DEVICE


@click.command("sample")
@click.option("--run", "run_dir", type=click.Path(), help="Run directory [default: the latest run; with --digit, the latest conditional run].")
@click.option("--digit", type=click.IntRange(0, NUM_CLASSES - 1), help="Digit (class) to draw; conditional runs only.")
@click.option("--n", type=click.IntRange(1, MAX_SAMPLES), default=64, show_default=True, help="Images to draw (a conditional run without --digit draws ceil(N/10) of each digit, one row per digit).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True, help="Seed of z ~ N(0, I); the same seed gives the same images.")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--out", help="Output file: .png writes a grid of decoder means E[x|z], .npy the array (n, 28, 28) float32 in [0, 1] [default: samples.png or samples-digitD.png in the current folder, numbered rather than overwritten].")
def sample_command(run_dir, digit, n, seed, device, out):
    """Sample digits: z ~ N(0, I), decoded to the mean image."""
    path = check_output_path(out) if out is not None else default_output_path(digit)
    if run_dir is None:
        run_dir = latest_run(conditional=True if digit is not None else None)
    run = load_run(run_dir, device=device)
    images, labels = sample_images(run.vae, n=n, digit=digit, seed=seed)
    path = save_images(images, path, nrow=grid_columns(n, labels, digit), exclusive=out is None)
    click.echo(f"wrote {images.shape[0]} samples from {run.path} to {path}")
