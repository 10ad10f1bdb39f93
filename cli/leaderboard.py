"""``pyro-vae leaderboard``: trained runs of any variants, ranked by the one evaluator."""

from __future__ import annotations

from pathlib import Path

import click

from pyro_vae.errors import PyroVAEError

from .options import DEVICE


@click.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--k", type=click.IntRange(min=1), default=5000, show_default=True, help="IWAE draws per test image.")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--fresh", is_flag=True, help="Evaluate every run again, even where its saved evaluate-kK.json scored the same weights.")
@click.option("--out", type=click.Path(file_okay=False), default="results/leaderboard", show_default=True)
def leaderboard_command(run_dirs, k, device, fresh, out):
    """Evaluate RUN_DIRS with the one evaluator (IWAE bound, ELBO, active units, FID) and write
    leaderboard.md, leaderboard.json and leaderboard.png into OUT. Each run's evaluation is saved
    in it as evaluate-kK.json and reused while its weights are unchanged."""
    from pyro_vae.classifier import classifier_available, load_or_train_classifier
    from pyro_vae.data import scored_images
    from pyro_vae.leaderboard import leaderboard_row, write_leaderboard
    from pyro_vae.runs import load_run

    runs = [load_run(run_dir, device=device) for run_dir in run_dirs]  # every run loads before any evaluation
    scored = {scored_images(run.config) for run in runs}
    if len(scored) > 1:
        raise PyroVAEError(f"a leaderboard ranks runs on one set of test images; these differ in source, shape or "
                           f"split: {'; '.join(sorted(map(str, scored)))}")  # fmt: skip
    classifier = None
    if classifier_available(runs[0].config) is None:
        classifier = load_or_train_classifier(runs[0].config, runs[0].device, echo=click.echo)
    rows = [leaderboard_row(run_dir, k, classifier, device, echo=click.echo, reuse=not fresh) for run_dir in run_dirs]
    for path in write_leaderboard(rows, Path(out)):
        click.echo(f"wrote {path}")
