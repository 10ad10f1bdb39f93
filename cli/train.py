"""``pyro-vae train``: fill a Config from the options and call pyro_vae.train."""

from __future__ import annotations

from pathlib import Path

import click

from pyro_vae.config import Config, parse_hidden_dims
from pyro_vae.errors import PyroVAEError
from pyro_vae.training import resume, train

DEFAULTS = Config()


def _default(name: str) -> str:
    value = getattr(DEFAULTS, name)
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@click.command("train")
@click.option("--epochs", type=int, help=f"Epochs to train [default: {_default('epochs')}].")
@click.option("--batch-size", type=int, help=f"Images per SVI step [default: {_default('batch_size')}].")
@click.option("--lr", "learning_rate", type=float, help=f"Adam learning rate [default: {_default('learning_rate')}].")
@click.option("--seed", type=int, help=f"Seeds torch, NumPy, Python and Pyro [default: {_default('seed')}].")
@click.option("--z-dim", type=int, help=f"Latent dimensions [default: {_default('z_dim')}].")
@click.option("--hidden-dims", help=f"MLP widths, comma-separated, e.g. 400 or 512,512 [default: {_default('hidden_dims')}].")
@click.option("--activation", help=f"Hidden activation: elu, relu, gelu, tanh or softplus [default: {_default('activation')}].")
@click.option("--dataset", help=f"mnist or fashion-mnist (Debian's dataset-fashion-mnist, or FashionMNIST/raw/ under --data-dir) [default: {_default('dataset')}].")
@click.option("--likelihood", help=f"bernoulli (dynamically binarized pixels) or normal (grey pixels, fixed scale) [default: {_default('likelihood')}].")
@click.option("--normal-scale", type=float, help=f"Standard deviation of the normal likelihood [default: {_default('normal_scale')}].")
@click.option("--elbo", help=f"analytic (TraceMeanField_ELBO, closed-form KL) or trace (Trace_ELBO, Monte-Carlo KL) [default: {_default('elbo')}].")
@click.option("--conditional", is_flag=True, default=None, help="Train a conditional VAE on the digit labels.")
@click.option("--label-scale", type=float, help=f"Conditional: the networks see this times the one-hot label [default: {_default('label_scale')}].")
@click.option("--label-every-layer/--label-input-only", default=None, help="Conditional: feed the label to every layer or only to the input [default: every layer].")
@click.option("--init-from", type=click.Path(), help="Start from this run's weights (fine-tuning, e.g. with a lower --lr); the network must have the same shape.")
@click.option("--fast/--no-fast", default=None, help="Fast step (Pyro's ELBO, one foreach torch Adam, validation off in the loop) or pyro.infer.SVI with pyro.optim.Adam [default: fast].")
@click.option("--device", help=f"auto, cpu, cuda or cuda:N [default: {_default('device')}].")
@click.option("--data-dir", help="Folder holding MNIST/raw/ [default: $PYRO_VAE_DATA, else ~/.cache/pyro-vae/data].")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory [default: a new one under $PYRO_VAE_RUNS or ./runs].")
@click.option("--quiet", is_flag=True, help="No progress bar; the per-epoch lines stay.")
@click.option("--no-plot", is_flag=True, help="Do not write the run's figures at the end (see `pyro-vae plot`).")
@click.option("--tensorboard", is_flag=True, help="Also log the per-epoch ELBOs for TensorBoard in RUN/tensorboard/ (pip install 'pyro-vae[tensorboard]').")
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue this run from its last complete checkpoint (with --epochs: up to that many in all).")
@click.option("--detect-anomaly", is_flag=True, help="Autograd anomaly detection, to find where a NaN comes from (slow).")
def train_command(out, quiet, hidden_dims, resume_dir, detect_anomaly, no_plot, tensorboard, **options):
    """Train a VAE (or, with --conditional, a conditional VAE) on MNIST or Fashion-MNIST with
    Pyro's SVI, then plot its figures into the run directory.

    Ctrl-C stops after keeping the last complete checkpoint and prints the command that resumes."""
    values = {name: value for name, value in options.items() if value is not None}
    if hidden_dims is not None:
        values["hidden_dims"] = parse_hidden_dims(hidden_dims)
    logger = TensorBoardLogger() if tensorboard else None
    common = dict(quiet=quiet, echo=click.echo, detect_anomaly=detect_anomaly, on_epoch=logger)
    if resume_dir is not None:
        fixed = sorted(set(values) - {"epochs", "device", "data_dir"}) + (["out"] if out else [])
        if fixed:
            raise PyroVAEError(
                f"--resume continues a run as it was configured; only --epochs, --device and --data-dir "
                f"may be given with it, not {', '.join('--' + name.replace('_', '-') for name in fixed)}"
            )
        run = resume(resume_dir, values.get("epochs"), values.get("device"), values.get("data_dir"), **common)
    else:
        run = train(Config(**values), out=out, **common)
    if not no_plot:
        from pyro_vae.plotting import plot_run  # matplotlib loads only when it is needed

        try:
            figures = plot_run(run)
        except KeyboardInterrupt:
            raise PlottingInterrupted(f"interrupted while plotting; the run is complete in {run.path} "
                                      f"and `pyro-vae plot {run.path}` draws its figures") from None  # fmt: skip
        click.echo(f"figures: {', '.join(path.name for path in figures)} (pyro-vae plot {run.path})")
    click.echo(f"run saved in {run.path}")


class PlottingInterrupted(Exception):
    """Ctrl-C after training finished, while the figures were being drawn."""


class TensorBoardLogger:
    """``on_epoch`` callback writing train and test ELBO per epoch into RUN/tensorboard/."""

    def __init__(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise PyroVAEError("--tensorboard needs the tensorboard package: pip install 'pyro-vae[tensorboard]'") from None
        self.writer_class, self.writer = SummaryWriter, None

    def __call__(self, record: dict, vae, run_dir) -> None:
        if self.writer is None:
            self.writer = self.writer_class(log_dir=str(Path(run_dir) / "tensorboard"))
        for split in ("train", "test"):
            self.writer.add_scalar(f"elbo/{split}", record[f"{split}_elbo"], record["epoch"])
        self.writer.add_scalar("seconds_per_epoch", record["seconds"], record["epoch"])
        self.writer.flush()
