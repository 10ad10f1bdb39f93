"""Train a VAE or conditional VAE with SVI, writing a run directory as it goes."""

from __future__ import annotations

import time
from pathlib import Path

import pyro

from .checkpoint import CHECKPOINT_NAME, save_checkpoint
from .config import Config
from .data import load_mnist
from .device import resolve_device
from .inference import evaluate_elbo, make_svi, seed_everything, train_epoch
from .model import VAE
from .progress import ProgressBar
from .runs import CONFIG_NAME, Run, append_metrics, new_run_dir


def train(
    config: Config, out: str | Path | None = None, quiet: bool = False, echo=print, on_epoch=None
) -> Run:
    """Train as ``config`` says; returns the finished :class:`~pyro_vae.runs.Run`.

    Every epoch appends ``{"epoch", "train_elbo", "test_elbo", "seconds"}`` to ``metrics.jsonl`` and
    rewrites ``checkpoint.pt`` atomically; ``echo`` receives one summary line per epoch (``None``
    silences it), ``quiet`` turns off the progress bar, and ``on_epoch(record, vae)``, if given, is
    called after each epoch's checkpoint (for notebooks and experiments).
    """
    config.validate()
    device = resolve_device(config.device)
    data = load_mnist(config.data_dir, device, binarize=config.likelihood == "bernoulli")
    run_dir = new_run_dir(config, out)
    config.save_json(run_dir / CONFIG_NAME)

    seed_everything(config.seed)
    pyro.clear_param_store()
    vae = VAE(config).to(device)
    svi = make_svi(vae, config)
    metrics = []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        bar = ProgressBar(f"epoch {epoch}/{config.epochs}", enabled=not quiet)
        images = data.train_epoch()
        train_elbo = train_epoch(svi, vae, images, data.train.labels, on_step=bar.update)
        bar.close()
        test_elbo = evaluate_elbo(vae, data.test)
        record = {
            "epoch": epoch,
            "train_elbo": train_elbo,
            "test_elbo": test_elbo,
            "seconds": time.perf_counter() - started,
        }
        metrics.append(record)
        save_checkpoint(
            run_dir / CHECKPOINT_NAME,
            {
                "config": config.to_dict(),
                "epoch": epoch,
                "model": vae.state_dict(),
                "optimizer": svi.optim.get_state(),
            },
        )
        append_metrics(run_dir, record)
        if on_epoch is not None:
            on_epoch(record, vae)
        if echo is not None:
            echo(
                f"epoch {epoch:3d}/{config.epochs}  train elbo {train_elbo:9.3f}  "
                f"test elbo {test_elbo:9.3f} nats/image  {record['seconds']:6.1f}s"
            )
    vae.eval()
    return Run(run_dir, config, vae, metrics)
