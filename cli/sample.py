"""``pyro-vae sample``: draw images from a trained run's prior."""

from __future__ import annotations

import click

from pyro_vae.config import MAX_SAMPLES, MAX_SEED
from pyro_vae.errors import PyroVAEError

from .options import DEVICE


@click.command("sample")
@click.option("--run", "run_dir", type=click.Path(), help="Run directory [default: the latest run; with --digit, the latest conditional run].")
@click.option("--digit", type=click.IntRange(min=0), help="Class index to draw (a digit, for MNIST and SVHN), from 0 to the run's classes - 1; conditional runs only.")
@click.option("--class", "class_name", metavar="NAME|INDEX", help="Class to draw, by name or index, for a conditional run on any labelled source.")
@click.option("--n", type=click.IntRange(1, MAX_SAMPLES), default=64, show_default=True, help="Images to draw (a conditional run without --digit or --class draws ceil(N / classes) of each class, one row per class).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True, help="Seed of z ~ N(0, I); the same seed gives the same images.")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--out", help="Output file: .png writes a grid of decoder means E[x|z], .npy the array (n, H, W) for grey images or (n, H, W, 3) for colour, float32 in [0, 1] [default: samples.png, samples-digitD.png or samples-classC.png in the current folder, numbered rather than overwritten].")
def sample_command(run_dir, digit, class_name, n, seed, device, out):
    """Sample images: z ~ p(z), decoded to the mean image."""
    from pyro_vae.runs import latest_run, load_run
    from pyro_vae.sampling import check_output_path, default_output_path, grid_columns, sample_images, save_images

    if digit is not None and class_name is not None:
        raise PyroVAEError("give --digit or --class, not both")
    wanted = digit if digit is not None else class_name
    label = "digit" if digit is not None else "class"
    path = check_output_path(out) if out is not None else default_output_path(wanted, label=label)
    if run_dir is None:
        run_dir = latest_run(conditional=True if wanted is not None else None)
    run = load_run(run_dir, device=device)
    images, labels = sample_images(run.vae, n=n, digit=wanted, seed=seed)
    path = save_images(images, path, nrow=grid_columns(n, labels, wanted), exclusive=out is None)
    click.echo(f"wrote {images.shape[0]} samples from {run.path} to {path}")
