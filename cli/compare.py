"""``pyro-vae compare``: likelihoods and ELBO estimators side by side, everything else equal."""

from __future__ import annotations

from pathlib import Path

import click

from pyro_vae.config import ELBOS, LIKELIHOODS, Config

from .options import ChoiceList, config_options, given


@click.command("compare")
@click.option("--likelihoods", type=ChoiceList(LIKELIHOODS), default=",".join(LIKELIHOODS), show_default=True)
@click.option("--elbos", type=ChoiceList(ELBOS), default="analytic", show_default=True)
@config_options("epochs", "hidden_dims", "z_dim", "network", "conv_channels", "dataset", "image_size", "channels", "test_fraction", "validation",
                "subset", "device", "data_dir")
@click.option("--k", type=click.IntRange(min=1), default=1000, show_default=True, help="IWAE draws per test image.")
@click.option("--out", type=click.Path(file_okay=False), default="results/compare", show_default=True)
def compare_command(likelihoods, elbos, k, out, **options):
    """Train (or reuse) one run per likelihood and ELBO estimator, evaluate each, and write
    compare.md, compare.json and compare.png into OUT."""
    from pyro_vae.compare import compare

    base = Config(**given(options))
    Path(out).mkdir(parents=True, exist_ok=True)
    compare(base, likelihoods, elbos, Path(out), k=k, echo=click.echo)
    click.echo(f"wrote {out}/compare.md, compare.json and compare.png")
