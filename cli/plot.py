"""``pyro-vae plot``: every figure of a run, as PNG files in its directory."""

from __future__ import annotations

import click

from pyro_vae.config import MAX_SEED

from .options import DEVICE


@click.command("plot")
@click.argument("run_dir", required=False, type=click.Path())
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder for the PNGs [default: the run directory].")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True, help="Seed of the images and z drawn; the same seed gives the same figures.")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--data-dir", help="Folder holding MNIST/raw/ or FashionMNIST/raw/ [default: the run's, else $PYRO_VAE_DATA].")
def plot_command(run_dir, out_dir, seed, device, data_dir):
    """Plot RUN (default: the latest run): ELBO curves, reconstructions, the latent space,
    interpolations, the 2-D manifold (z_dim 2) and the style grid (conditional runs)."""
    from pyro_vae.plotting import plot_run
    from pyro_vae.runs import latest_run, load_run

    run = load_run(run_dir or latest_run(), device=device)
    for path in plot_run(run, out_dir=out_dir, seed=seed, data_dir=data_dir):
        click.echo(f"wrote {path}")
