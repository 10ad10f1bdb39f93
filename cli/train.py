"""``pyro-vae train``: fill a Config from the options and call pyro_vae.train."""

from __future__ import annotations

import click

from pyro_vae.config import Config
from pyro_vae.errors import PyroVAEError
from pyro_vae.tracking import TRACKERS

from .options import config_options, flag_of, given, launch_elsewhere, nproc_option


@click.command("train")
@config_options(
    "epochs", "batch_size", "learning_rate", "optimizer", "lr_schedule", "lr_warmup", "grad_clip", "ema", "seed", "z_dim", "hidden_dims", "activation", "network",
    "conv_channels", "dataset",
    "image_size", "channels", "test_fraction", "validation", "subset", "likelihood", "mixture", "normal_scale", "elbo", "objective", "particles", "beta", "kl_warmup", "free_bits", "prior", "pseudo_inputs",
    "posterior", "flows", "stochastic_layers", "upper_z_dims", "conditional", "labels", "classifier_weight", "label_scale",
    "label_every_layer", "visible_quadrants", "baseline_epochs", "init_from",
    "fast", "device", "data_dir",
)
@click.option("--out", type=click.Path(file_okay=False), help="Run directory [default: a new one under $PYRO_VAE_RUNS or ./runs].")
@click.option("--quiet", is_flag=True, help="No progress bar; the per-epoch lines stay.")
@click.option("--no-plot", is_flag=True, help="Do not write the run's figures at the end (see `pyro-vae plot`).")
@click.option("--track", type=click.Choice(TRACKERS), multiple=True, help="Also log the run: tensorboard (per-epoch ELBOs into RUN/tensorboard/), mlflow (parameters, per-epoch metrics and the figures, into ./mlruns or $MLFLOW_TRACKING_URI); repeat for both (pip install 'pyro-vae[tensorboard]' or 'pyro-vae[mlflow]').")
@click.option("--tensorboard", is_flag=True, hidden=True, help="The same as --track tensorboard.")
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue this run from its last complete checkpoint (with --epochs: up to that many in all).")
@click.option("--detect-anomaly", is_flag=True, help="Autograd anomaly detection, to find where a NaN comes from (slow).")
@nproc_option
def train_command(out, quiet, resume_dir, detect_anomaly, no_plot, track, tensorboard, nproc, **options):
    """Train a VAE (or, with --conditional, a conditional VAE) with Pyro's SVI on MNIST,
    Fashion-MNIST, CIFAR-10, SVHN or your own images (a folder or an array), then plot its figures
    into the run directory.

    Ctrl-C stops after keeping the last complete checkpoint and prints the command that resumes.
    Under torchrun (or with --nproc N) the processes train one model together (README: scaling out)."""
    from pyro_vae.distributed import is_main_process
    from pyro_vae.tracking import Trackers
    from pyro_vae.training import resume, train

    values = given(options)
    if resume_dir is None:
        Config(**values, world_size=nproc).validate()  # a bad value stops here, once, not in every process
    if launch_elsewhere(nproc):
        return
    trackers = Trackers(track + (("tensorboard",) if tensorboard else ()))  # training calls it on rank 0 only
    common = dict(quiet=quiet, echo=click.echo, detect_anomaly=detect_anomaly, on_epoch=trackers)
    if resume_dir is not None:
        fixed = sorted(set(values) - {"epochs", "device", "data_dir"}) + (["out"] if out else [])
        if fixed:
            raise PyroVAEError(
                f"--resume continues a run as it was configured; only --epochs, --device and --data-dir "
                f"may be given with it, not {', '.join(map(flag_of, fixed))}"
            )
        run = resume(resume_dir, values.get("epochs"), values.get("device"), values.get("data_dir"), **common)
    else:
        run = train(Config(**values), out=out, **common)
    if not is_main_process():  # rank 0 alone draws, prints and tracks
        return
    figures = []
    if not no_plot:
        from pyro_vae.plotting import plot_run

        try:
            figures = plot_run(run)
        except KeyboardInterrupt:
            raise PlottingInterrupted(f"interrupted while plotting; the run is complete in {run.path} "
                                      f"and `pyro-vae plot {run.path}` draws its figures") from None  # fmt: skip
        click.echo(f"figures: {', '.join(path.name for path in figures)} (pyro-vae plot {run.path})")
    trackers.finish(run.path, figures)
    click.echo(f"run saved in {run.path}")


class PlottingInterrupted(Exception):
    """Ctrl-C after training finished, while the figures were being drawn."""

