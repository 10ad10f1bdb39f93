"""``pyro-vae runs``: the runs under the runs root, one line each (or JSON for scripts)."""

from __future__ import annotations

import json

import click


@click.command("runs")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects instead of the table.")
def runs_command(as_json):
    """List the runs under $PYRO_VAE_RUNS (default ./runs): name, date, likelihood, ELBO
    estimator, conditional, epochs done of planned, best test ELBO."""
    from pyro_vae.runs import list_runs, runs_root

    summaries = list_runs()
    if as_json:
        click.echo(json.dumps(summaries))
        return
    if not summaries:
        click.echo(f"no runs under {runs_root()}/; train one with `pyro-vae train`")
        return
    header = f"{'run':34s} {'date':16s} {'dataset':13s} {'likelihood':20s} {'elbo':8s} {'cond.':5s} {'epochs':>7s} {'best test elbo':>14s}"
    click.echo(header)
    for run in summaries:
        best = "-" if run["best_test_elbo"] is None else f"{run['best_test_elbo']:.3f}"
        epochs = f"{run['epochs_done']}/{run['epochs']}"
        click.echo(
            f"{run['name']:34s} {run['date']:16s} {run['dataset']:13s} {run['likelihood']:20s} {run['elbo']:8s} "
            f"{'yes' if run['conditional'] else 'no':5s} {epochs:>7s} {best:>14s}"
        )
