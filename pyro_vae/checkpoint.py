"""One checkpoint dict per run, written atomically and loaded without executing code.

``checkpoint.pt`` holds ``{"format_version", "config", "epoch", "step", "model", "optimizer", "rng",
"metrics"}`` (training.py writes it; the evaluation classifier's cache holds ``"model"`` only); the
same configuration also sits beside it as ``config.json`` for people and scripts.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from pathlib import Path

import torch

from .config import Config
from .errors import PyroVAEError

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A short SHA-256 of a module's weights (names and bytes), the same whether or not the
    checkpoint still holds the optimizer: what an evaluation saved beside a run is checked against."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, flush and fsync it, then rename it over the old checkpoint, so a
    crash or a full disk mid-write leaves the previous checkpoint whole."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save({"format_version": FORMAT_VERSION, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load with ``weights_only=True``: tensors and plain containers only, never arbitrary objects;
    onto the CPU unless asked otherwise, so a GPU run's checkpoint loads on a machine without one."""
    path = Path(path)
    if not path.is_file():
        raise PyroVAEError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles; we refuse them below
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise PyroVAEError(
            f"refusing to load {path}: it is not a plain pyro-vae checkpoint ({first_line})"
        ) from None
    except Exception as error:
        raise PyroVAEError(
            f"{path} is not a readable checkpoint (empty, truncated or corrupt): {type(error).__name__}"
        ) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise PyroVAEError(f"{path} is not a pyro-vae checkpoint (no format_version)")
    if state["format_version"] != FORMAT_VERSION:
        raise PyroVAEError(
            f"{path} has checkpoint format {state['format_version']}, this pyro-vae reads {FORMAT_VERSION}"
        )
    return state


def _grows(trained: torch.Tensor, fresh: torch.Tensor) -> bool:
    return trained.shape[1:] == fresh.shape[1:] and 0 < len(trained) < len(fresh)


def config_from_checkpoint(state: dict, path: Path) -> Config:
    try:
        return Config.from_dict(dict(state["config"]))
    except (KeyError, TypeError, PyroVAEError) as error:
        raise PyroVAEError(f"{path} holds no usable configuration: {error}") from None


def load_weights(module: torch.nn.Module, weights: dict, path: Path, against: str = "its configuration's networks",
                 new_pieces: tuple[str, ...] = (), grown_outputs: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Load a state dict, naming the mismatch instead of a shape traceback. Parameters under
    ``new_pieces`` (module prefixes) may be absent from ``weights`` and keep their fresh values:
    fine-tuning a trained VAE with a piece it did not have, such as a VampPrior's pseudo-inputs.
    A layer named in ``grown_outputs`` may have more output rows than in ``weights``: the trained
    rows come first and the new ones keep their fresh values (an IAF encoder's context after a
    Gaussian encoder's mean and log-scale)."""
    own = module.state_dict()
    fresh = {name for name in set(own) - set(weights) if name.split(".", 1)[0] in new_pieces}
    weights = {**{name: own[name] for name in fresh}, **weights}
    for name in own:
        if name.rsplit(".", 1)[0] in grown_outputs and name in weights and _grows(weights[name], own[name]):
            weights[name] = torch.cat([weights[name].to(own[name].dtype), own[name][len(weights[name]) :]])
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong_shape = [
        f"{name} {tuple(weights[name].shape)} vs {tuple(own[name].shape)}"
        for name in own
        if name in weights and weights[name].shape != own[name].shape
    ]
    if missing or unexpected or wrong_shape:
        details = "; ".join(
            part
            for part in (
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {unexpected[:3]}" if unexpected else "",
                f"shape (checkpoint vs config) {wrong_shape[:3]}" if wrong_shape else "",
            )
            if part
        )
        raise PyroVAEError(f"{path} does not match {against}: {details}")
    module.load_state_dict(weights)
