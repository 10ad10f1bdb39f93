"""``pyro-vae``: train, sample, evaluate, compare, plot and list runs, and encode, reconstruct and score
images with one, from the command line."""

from __future__ import annotations

import os
import sys

import click

from pyro_vae.errors import PyroVAEError, TrainingInterrupted

from . import options
from .compare import compare_command
from .complete import complete_command
from .evaluate import evaluate_command
from .leaderboard import leaderboard_command
from .per_image import encode_command, reconstruct_command, score_command
from .plot import plot_command
from .runs import runs_command
from .sample import sample_command
from .train import PlottingInterrupted, train_command

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pyro-vae", prog_name="pyro-vae")
def cli():
    """A variational autoencoder and a conditional VAE on MNIST, Fashion-MNIST, CIFAR-10, SVHN or your
    own images, in Pyro."""


cli.add_command(train_command)
cli.add_command(sample_command)
cli.add_command(evaluate_command)
cli.add_command(compare_command)
cli.add_command(plot_command)
cli.add_command(runs_command)
cli.add_command(leaderboard_command)
cli.add_command(complete_command)
cli.add_command(encode_command)
cli.add_command(reconstruct_command)
cli.add_command(score_command)


def _one_line(message, limit: int = 400) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _leave_process_group() -> None:
    """Leave torch.distributed's process group, if this process joined one (a command that never
    loaded torch, such as --help, never did)."""
    if "torch.distributed" in sys.modules:
        from pyro_vae.distributed import leave

        leave()


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become ``pyro-vae: error: ...`` and exit 2, never a traceback
    (set ``PYRO_VAE_DEBUG=1`` to see one for an unexpected error)."""
    options.ARGUMENTS[:] = sys.argv[1:] if argv is None else list(argv)
    try:
        code = cli.main(args=argv, prog_name="pyro-vae", standalone_mode=False)
    except TrainingInterrupted as stop:
        kept = (
            f"the checkpoint of epoch {stop.completed_epochs} is kept"
            if stop.completed_epochs
            else "no epoch had completed"
        )
        click.echo(
            f"pyro-vae: interrupted; {kept}. Resume with: pyro-vae train --resume {stop.run_dir}",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except PlottingInterrupted as stop:
        click.echo(f"pyro-vae: {stop}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("pyro-vae: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.Abort:
        click.echo("pyro-vae: aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as error:
        click.echo(f"pyro-vae: error: {_one_line(error.format_message())}", err=True)
        sys.exit(EXIT_USER_ERROR if error.exit_code == 2 else error.exit_code or 1)
    except PyroVAEError as error:
        click.echo(f"pyro-vae: error: {_one_line(error)}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except Exception as error:  # a bug, not the user's fault: still one line unless asked
        if os.environ.get("PYRO_VAE_DEBUG"):
            raise
        click.echo(
            f"pyro-vae: unexpected error: {type(error).__name__}: {_one_line(error)} "
            "(set PYRO_VAE_DEBUG=1 for the traceback)",
            err=True,
        )
        sys.exit(1)
    finally:
        _leave_process_group()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
