"""``pyro-vae complete``: draw completions of test images from their visible quadrants."""

from __future__ import annotations

from pathlib import Path

import click

from pyro_vae.config import MAX_SEED
from pyro_vae.errors import PyroVAEError

from .options import DEVICE


@click.command("complete")
@click.option("--run", "run_dir", type=click.Path(), help="An image-completion run [default: the latest one].")
@click.option("--n", type=click.IntRange(1, 100), default=8, show_default=True, help="Test images, one row each.")
@click.option("--draws", type=click.IntRange(1, 20), default=6, show_default=True, help="CVAE completions per image.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True, help="Seed of the test images chosen and the z drawn.")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--data-dir", help="Folder holding MNIST/raw/, ... [default: the run's, else $PYRO_VAE_DATA].")
@click.option("--out", help="Output PNG [default: completion.png in the current folder, numbered rather than overwritten].")
def complete_command(run_dir, n, draws, seed, device, data_dir, out):
    """Complete test digits from 1, 2 or 3 visible quadrants: per row the visible input, the truth,
    the baseline network's prediction and several CVAE completions, z ~ p(z | x_visible)."""
    import torch

    from pyro_vae.completion import completion_of
    from pyro_vae.data import load_data
    from pyro_vae.plotting import completion_figure
    from pyro_vae.runs import latest_run, load_run
    from pyro_vae.sampling import check_output_path, default_output_path

    if out is not None and Path(out).suffix.lower() != ".png":
        raise PyroVAEError(f"--out must end in .png, got {out!r}")
    path = check_output_path(out) if out is not None else default_output_path(None, stem="completion")
    run = load_run(run_dir or latest_run(completion=True), device=device)
    completion_of(run.vae)  # a clear error for a run that does not complete images
    test = load_data(run.config, run.device, data_dir=data_dir).test
    completion_figure(run, test, path, torch.Generator().manual_seed(seed), n=n, draws=draws)
    click.echo(f"wrote {n} test images with {draws} completions each from {run.path} to {path}")
