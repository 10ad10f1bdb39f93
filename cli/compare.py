"""``pyro-vae compare``: likelihoods and ELBO estimators side by side, everything else equal."""

from __future__ import annotations

from pathlib import Path

import click

from pyro_vae.compare import compare
from pyro_vae.config import Config, parse_hidden_dims


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


@click.command("compare")
@click.option("--likelihoods", default="bernoulli,normal,continuous-bernoulli", show_default=True)
@click.option("--elbos", default="analytic", show_default=True, help="Comma-separated: analytic, trace.")
@click.option("--epochs", type=int, help="Epochs per variant [default: the Config default].")
@click.option("--hidden-dims", help="MLP widths for every variant, e.g. 512,512.")
@click.option("--z-dim", type=int, help="Latent dimensions for every variant.")
@click.option("--k", type=click.IntRange(min=1), default=1000, show_default=True, help="IWAE draws per test image.")
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--data-dir", help="Folder holding MNIST/raw/.")
@click.option("--out", type=click.Path(file_okay=False), default="results/compare", show_default=True)
def compare_command(likelihoods, elbos, epochs, hidden_dims, z_dim, k, device, data_dir, out):
    """Train (or reuse) one run per likelihood and ELBO estimator, evaluate each, and write
    compare.md, compare.json and compare.png into OUT."""
    values = {"epochs": epochs, "z_dim": z_dim, "device": device, "data_dir": data_dir}
    values = {name: value for name, value in values.items() if value is not None}
    if hidden_dims is not None:
        values["hidden_dims"] = parse_hidden_dims(hidden_dims)
    base = Config(**values)
    Path(out).mkdir(parents=True, exist_ok=True)
    for likelihood in _names(likelihoods):
        Config(likelihood=likelihood)  # validates the names before any training
    for elbo in _names(elbos):
        Config(elbo=elbo)
    compare(base, _names(likelihoods), _names(elbos), Path(out), k=k, echo=click.echo)
    click.echo(f"wrote {out}/compare.md, compare.json and compare.png")
