"""Run directories: ``config.json``, ``checkpoint.pt`` and ``metrics.jsonl`` side by side.

A new run goes under the runs root, ``$PYRO_VAE_RUNS`` or ``./runs``, unless ``--out`` names it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import CHECKPOINT_NAME, config_from_checkpoint, load_checkpoint, load_weights
from .config import Config
from .device import resolve_device
from .practice import averaged_weights
from .errors import PyroVAEError
from .model import VAE
from .models import build_model

METRICS_NAME = "metrics.jsonl"
CONFIG_NAME = "config.json"


def runs_root() -> Path:
    return Path(os.environ.get("PYRO_VAE_RUNS") or "runs")


def new_run_dir(config: Config, out: str | Path | None = None) -> Path:
    if out is not None:
        run_dir = Path(out)
        if (run_dir / CHECKPOINT_NAME).exists():
            raise PyroVAEError(
                f"{run_dir} already holds a finished run's checkpoint; choose another --out"
            )
    else:
        kind = "cvae" if config.conditional else "vae"
        kind = f"ssvae{config.labels}" if config.labels is not None else kind
        kind = f"complete{config.visible_quadrants}" if config.visible_quadrants is not None else kind
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{config.likelihood}"
        run_dir = runs_root() / stem
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = runs_root() / f"{stem}-{suffix}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PyroVAEError(f"cannot create run directory {run_dir}: {error.strerror}") from None
    return run_dir


def write_metrics(run_dir: Path, records: list[dict]) -> None:
    """Rewrite ``metrics.jsonl`` whole (write-then-rename), one JSON object per epoch."""
    temporary = run_dir / (METRICS_NAME + ".tmp")
    temporary.write_text("".join(json.dumps(record) + "\n" for record in records))
    os.replace(temporary, run_dir / METRICS_NAME)


def held_out_elbo(record: dict) -> float:
    """The ELBO an epoch reported on its held-out images: the validation split's (``val_elbo``) for a
    run with ``--validation``, else the test split's."""
    return record["val_elbo"] if "val_elbo" in record else record["test_elbo"]


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Run:
    """A trained run: its directory, configuration, networks (eval mode) and per-epoch metrics."""

    path: Path
    config: Config
    vae: VAE
    metrics: list[dict] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def sample(self, n: int = 64, digit: int | str | None = None, seed: int = 0) -> torch.Tensor:
        """n images (n, H, W), or (n, H, W, 3) in colour, decoder means in [0, 1]; ``digit`` a class
        index or name; see ``pyro_vae.sampling.sample_images``."""
        from .sampling import sample_images

        return sample_images(self.vae, n=n, digit=digit, seed=seed)[0]

    def encode(self, images, labels=None, samples: int = 0, seed: int = 0) -> dict:
        """The posterior of each image, per latent site: ``{site}_loc``, ``{site}_scale`` (n, d), numpy
        arrays; ``images`` uint8 or floats in [0, 1], (N, H, W), (N, H, W, C) or (N, C, H, W); a
        conditional run needs ``labels``. See ``pyro_vae.per_image.encode``."""
        from .per_image import as_split, encode

        return encode(self, as_split(self, images, labels), samples=samples, seed=seed)

    def reconstruct(self, images, labels=None) -> torch.Tensor:
        """E[x | z = the posterior mean] of each image: (n, H, W), or (n, H, W, 3), in [0, 1]."""
        from .per_image import as_split, reconstruct

        return reconstruct(self, as_split(self, images, labels))

    def score(self, images, labels=None, k: int = 100, scores=("nll", "complexity"), seed: int = 0, **options) -> dict:
        """Per image: the IWAE bound ``log_likelihood``, ``bits_per_dim`` and the out-of-distribution
        ``scores`` (higher: more out of distribution). See ``pyro_vae.per_image.score``."""
        from .per_image import as_split, score

        return score(self, as_split(self, images, labels), k=k, scores=tuple(scores), seed=seed, **options)


def load_run(path: str | Path, device: str = "auto") -> Run:
    """Rebuild a run's VAE from its checkpoint, on ``device`` (``auto``: CUDA when present)."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise PyroVAEError(f"run directory {run_dir} does not exist")
    checkpoint_path = run_dir / CHECKPOINT_NAME
    state = load_checkpoint(checkpoint_path, map_location="cpu")
    config = config_from_checkpoint(state, checkpoint_path)
    target = resolve_device(device)
    vae = build_model(config)
    load_weights(vae, averaged_weights(state), checkpoint_path)  # with --ema, the averaged weights
    vae.to(target).eval()
    return Run(run_dir, config, vae, read_metrics(run_dir))


def latest_run(conditional: bool | None = None, completion: bool | None = None) -> Path:
    """The run under the runs root whose checkpoint was written last (only conditional ones, or only
    image-completion ones, if asked)."""
    root = runs_root()
    candidates = sorted(
        root.glob(f"*/{CHECKPOINT_NAME}"), key=lambda p: p.stat().st_mtime, reverse=True
    ) if root.is_dir() else []
    for checkpoint_path in candidates:
        run_dir = checkpoint_path.parent
        if conditional is not None and bool(_config_value(run_dir, "conditional")) != conditional:
            continue
        if completion is not None and (_config_value(run_dir, "visible_quadrants") is not None) != completion:
            continue
        return run_dir
    kind = "conditional run" if conditional else "image-completion run" if completion else "run"
    hint = "pyro-vae train --conditional" if conditional else "pyro-vae train --visible-quadrants 2" if completion else "pyro-vae train"
    raise PyroVAEError(f"no {kind} under {root}/; train one with `{hint}` or pass --run DIR")


def _config_value(run_dir: Path, key: str):
    try:
        return json.loads((run_dir / CONFIG_NAME).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def list_runs(root: Path | None = None) -> list[dict]:
    """One summary per run directory under ``root`` (default: the runs root), oldest first, read
    from config.json and metrics.jsonl only (no weights are loaded). Folders without a readable
    config.json are not runs and are left out."""
    root = Path(root or runs_root())
    summaries = []
    for run_dir in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            config = Config.load_json(run_dir / CONFIG_NAME)
            metrics = read_metrics(run_dir)
        except (OSError, ValueError, TypeError, PyroVAEError):
            continue
        checkpoint = run_dir / CHECKPOINT_NAME
        stamp = (checkpoint if checkpoint.exists() else run_dir / CONFIG_NAME).stat().st_mtime
        test_elbos = [held_out_elbo(record) for record in metrics]
        summaries.append({
            "name": run_dir.name,
            "path": str(run_dir),
            "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)),
            "dataset": config.dataset,
            "likelihood": config.likelihood,
            "elbo": config.elbo,
            "conditional": config.conditional,
            "epochs_done": metrics[-1]["epoch"] if metrics else 0,
            "epochs": config.epochs,
            "best_test_elbo": max(test_elbos) if test_elbos else None,
        })  # fmt: skip
    return sorted(summaries, key=lambda summary: (summary["date"], summary["name"]))
