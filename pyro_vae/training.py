"""Train a VAE or conditional VAE with SVI, writing a run directory as it goes; resume one exactly.

After every epoch the loop writes one checkpoint (atomically) holding the weights, Pyro's Adam state,
the epoch and step counters, every random generator's state and the metrics so far. Resuming from it
replays the rest of the run draw for draw: on the CPU a killed-and-resumed run ends with the same
bits as an uninterrupted one.

Under torchrun the same loop runs in every process (distributed.py): each trains on its shard of
every batch, the gradients are summed over the processes, and rank 0 alone writes the run directory,
with every process's random streams in the checkpoint, so a distributed run resumes as exactly.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pyro
import torch

from .checkpoint import CHECKPOINT_NAME, config_from_checkpoint, load_checkpoint, load_weights, save_checkpoint
from .config import Config, replace
from .data import balanced_labels, keep_labels, load_data
from .device import device_name
from .distributed import SINGLE, World, broadcast_parameters, join, stream_seed
from .errors import PyroVAEError, TrainingInterrupted
from .inference import NonFiniteLoss, classification_accuracy, evaluate_elbo, make_svi, seed_everything, train_epoch
from .completion import CompletionCVAE, mean_baseline_nll
from .m2 import SemiSupervisedVAE
from .models import build_model, check_size
from .practice import averaged_weights
from .progress import ProgressBar
from .rng import capture_rng_state, restore_rng_state
from .runs import CONFIG_NAME, Run, new_run_dir, write_metrics


LABELED_NAME = "labeled.json"


def train(
    config: Config,
    out: str | Path | None = None,
    quiet: bool = False,
    echo=print,
    on_epoch=None,
    detect_anomaly: bool = False,
) -> Run:
    """Train as ``config`` says; returns the finished :class:`~pyro_vae.runs.Run`.

    Every epoch appends ``{"epoch", "train_elbo", "test_elbo", "seconds"}`` (``val_elbo`` in place of
    ``test_elbo`` with ``config.validation``) to ``metrics.jsonl`` and
    rewrites ``checkpoint.pt`` atomically; ``echo`` receives one summary line per epoch (``None``
    silences it), ``quiet`` turns off the progress bar, and ``on_epoch(record, vae, run_dir)``, if given, is
    called after each epoch's checkpoint (for notebooks and experiments). ``detect_anomaly`` runs
    autograd's anomaly detection to find where a NaN comes from (slow).
    """
    config.validate()
    world, device = join(config.device)
    config = replace(config, world_size=world.size)
    config.validate()
    check_size(config)
    initial = _initial_weights(config)
    data, labeled_index = _training_data(config, device)
    # the image shape and classes are the data's: recorded in config.json and the checkpoint
    config = replace(config, image_shape=data.image_shape, class_names=data.class_names or None)
    check_size(config)
    seed_everything(config.seed)
    pyro.clear_param_store()
    vae = build_model(config)
    if initial is not None:  # before any run directory exists, so a mismatch leaves nothing behind
        # A new piece starts fresh; so do the encoder outputs a new posterior adds (an IAF's context).
        load_weights(vae, initial, Path(config.init_from) / CHECKPOINT_NAME, against="the networks this run asks for",
                     new_pieces=("latent_prior", "latent_posterior", "bottom_up", "downward", "classifier", "completion"),
                     grown_outputs=(f"encoder.net.{vae.encoder.net.output_layer}",))  # fmt: skip
    vae.to(device)
    broadcast_parameters(vae, world)
    run_dir = _new_run_dir(config, out, world)
    if world.main:
        config.save_json(run_dir / CONFIG_NAME)
        _record_labeled(run_dir, labeled_index)
    svi = make_svi(vae, config, len(data.train), data.labeled, world)
    if world.distributed:  # the same weights everywhere, then each process its own draws
        seed_everything(stream_seed(config.seed, "rank", world.rank))
    return _fit(run_dir, config, data, vae, svi, {"epoch": 0, "step": 0, "metrics": []},
                quiet, echo, on_epoch, detect_anomaly, world)  # fmt: skip


def _new_run_dir(config: Config, out, world: World) -> Path:
    """Made by rank 0; its name (a timestamp, unless --out gives one) told to the others."""
    run_dir = new_run_dir(config, out) if world.main else None
    return Path(world.gather(None if run_dir is None else str(run_dir))[0])


def _training_data(config: Config, device: torch.device):
    """(data on ``device``, None); for a semi-supervised run the data split into the ``--labels``
    images that keep their labels (balanced as near as the count allows, chosen by the seed) and the unlabeled rest, and the
    kept images' indices in the training split."""
    data = load_data(config, device)
    if (config.conditional or config.labels is not None) and not data.class_names:
        raise PyroVAEError(f"--conditional needs a source with classes; {config.dataset} has no labels "
                           f"(a folder needs one subfolder per class, an .npz a 'labels' array)")  # fmt: skip
    if config.labels is None:
        return data, None
    index = balanced_labels(data.train.labels, config.labels, config.seed, len(data.class_names))
    return keep_labels(data, index), index


def _record_labeled(run_dir: Path, index: torch.Tensor | None) -> None:
    """Which training images kept their labels, in ``labeled.json`` (indices into the training split)."""
    if index is not None:
        (run_dir / LABELED_NAME).write_text(json.dumps({"labeled": len(index), "indices": index.tolist()}) + "\n")


def _initial_weights(config: Config) -> dict | None:
    """The weights of ``config.init_from``'s checkpoint, read before any run directory is made."""
    if config.init_from is None:
        return None
    path = Path(config.init_from) / CHECKPOINT_NAME
    return averaged_weights(load_checkpoint(path, map_location="cpu"))  # with --ema, the averaged weights


def resume(
    run_dir: str | Path,
    epochs: int | None = None,
    device: str | None = None,
    data_dir: str | None = None,
    quiet: bool = False,
    echo=print,
    on_epoch=None,
    detect_anomaly: bool = False,
) -> Run:
    """Continue ``run_dir`` from its last complete checkpoint up to ``config.epochs`` (or ``epochs``,
    which raises the total). Weights, optimizer state, counters, random generators and metrics all
    come from the checkpoint; ``metrics.jsonl`` is rewritten from it, so no epoch is lost or doubled."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PyroVAEError(f"run directory {run_dir} does not exist")
    checkpoint_path = run_dir / CHECKPOINT_NAME
    state = load_checkpoint(checkpoint_path, map_location="cpu")
    if "rng" not in state or "step" not in state:
        raise PyroVAEError(f"{checkpoint_path} holds weights only (no training state) and cannot be resumed")
    changes = {key: value for key, value in (("epochs", epochs), ("device", device), ("data_dir", data_dir)) if value is not None}
    config = replace(config_from_checkpoint(state, checkpoint_path), **changes)
    if config.epochs < state["epoch"]:
        raise PyroVAEError(f"--epochs {config.epochs} is fewer than the {state['epoch']} epochs {run_dir} has done")
    world, target = join(config.device)
    trained_on, config = config.world_size, replace(config, world_size=world.size)
    config.validate()
    data, _ = _training_data(config, target)
    pyro.clear_param_store()
    vae = build_model(config)
    load_weights(vae, state["model"], checkpoint_path)
    vae.to(target)
    svi = make_svi(vae, config, len(data.train), data.labeled, world)
    svi.load_state_dict(state["optimizer"])
    if svi.average is not None:
        svi.average.load_state_dict(state["ema"])
    _restore_streams(state, trained_on, config, world, echo)
    if world.main:
        config.save_json(run_dir / CONFIG_NAME)
        write_metrics(run_dir, state["metrics"])
    return _fit(run_dir, config, data, vae, svi, state, quiet, echo, on_epoch, detect_anomaly, world)


def _restore_streams(state: dict, trained_on: int, config: Config, world: World, echo) -> None:
    """Every process's generators as the checkpoint left them; on another number of processes there
    are not the same streams to go on with, so they start afresh from (seed, epoch, rank)."""
    if trained_on == world.size:
        restore_rng_state(state["rng_ranks"][world.rank] if world.distributed else state["rng"])
        return
    seed_everything(stream_seed(config.seed, "resumed", state["epoch"], world.rank))
    if echo is not None and world.main:
        echo(f"resuming a run trained on {trained_on} process(es) on {world.size}: the weights and the optimizer "
             f"go on from epoch {state['epoch']}, the random streams (batch order, binarization, draws) start "
             f"afresh, so the rest will not match an uninterrupted run draw for draw")  # fmt: skip


def _fit(run_dir, config, data, vae, svi, progress, quiet, echo, on_epoch, detect_anomaly, world=SINGLE) -> Run:
    completed, step, metrics = progress["epoch"], progress["step"], list(progress["metrics"])
    try:
        with torch.autograd.set_detect_anomaly(detect_anomaly):
            for epoch in range(completed + 1, config.epochs + 1):
                record, steps = _one_epoch(epoch, config, data, vae, svi, quiet or not world.main, step, world)
                step += steps
                metrics.append(record)
                _save(run_dir, config, vae, svi, epoch, step, metrics, world)
                completed = epoch
                if not world.main:
                    continue
                write_metrics(run_dir, metrics)
                if echo is not None:
                    echo(_summary(record, config))
                if on_epoch is not None:
                    on_epoch(record, vae, run_dir)
    except KeyboardInterrupt:
        raise TrainingInterrupted(run_dir, completed) from None
    except NonFiniteLoss as error:
        kept = f"the checkpoint of epoch {completed} in {run_dir} is kept" if completed else "no epoch had completed"
        raise PyroVAEError(
            f"the loss became {error.value} at epoch {completed + 1}, step {error.step}; {kept}. "
            f"Try a lower --lr (now {config.learning_rate:g}), or --detect-anomaly to find the operation"
        ) from None
    if svi.average is not None:  # what evaluation and the figures use (practice.WeightAverage)
        with torch.no_grad():
            torch._foreach_copy_(svi.average.parameters, svi.average.average)
    vae.eval()
    return Run(run_dir, config, vae, metrics)


def _one_epoch(epoch, config, data, vae, svi, quiet, steps_done, world=SINGLE):
    started, skipped = time.perf_counter(), svi.skipped
    bar = ProgressBar(f"epoch {epoch}/{config.epochs}", enabled=not quiet)
    try:
        train_elbo, steps = train_epoch(svi, vae, data, steps_done, on_step=bar.update, epoch=epoch, world=world)
    finally:
        bar.close()
    # with --validation the epoch reports the validation images; the test split is evaluate's alone
    held_out, name = (data.validation, "val") if data.validation is not None else (data.test, "test")
    record = {"epoch": epoch, "train_elbo": train_elbo}
    # the held-out figures are of the weights evaluation uses: the average, where the run keeps one
    with svi.average.applied() if svi.average is not None else contextlib.nullcontext():
        record[f"{name}_elbo"] = evaluate_elbo(vae, held_out, world=world)
        record["seconds"], record["device"] = time.perf_counter() - started, device_name(held_out.target)
        if world.distributed:
            record["processes"] = world.size
        if config.grad_clip is not None:
            record["skipped_updates"] = svi.skipped - skipped
        if isinstance(vae, SemiSupervisedVAE):
            record[f"{name}_accuracy"] = classification_accuracy(vae, held_out, world)
        if isinstance(vae, CompletionCVAE):
            record[f"{name}_baseline_nll"] = mean_baseline_nll(vae, held_out, world=world)
    return record, steps


def _save(run_dir, config, vae, svi, epoch, step, metrics, world=SINGLE) -> None:
    """Rank 0 writes the checkpoint, with every process's generators (a collective: all call it)."""
    streams = world.gather(capture_rng_state())
    if not world.main:
        return
    state = {
        "config": config.to_dict(),
        "epoch": epoch,
        "step": step,
        "model": vae.state_dict(),
        "optimizer": svi.state_dict(),
        "rng": streams[0],
        "metrics": metrics,
    }
    if world.distributed:
        state["rng_ranks"] = streams
    if svi.average is not None:
        state["ema"] = svi.average.state_dict()
    try:
        save_checkpoint(run_dir / CHECKPOINT_NAME, state)
    except OSError as error:
        raise PyroVAEError(
            f"could not write the checkpoint of epoch {epoch} ({error.strerror or error}); "
            f"{run_dir / CHECKPOINT_NAME} still holds epoch {epoch - 1}"
        ) from None


def _summary(record: dict, config: Config) -> str:
    """One line per epoch; the training column is the objective's own bound (the IWAE-K bound for
    --objective iwae, the beta-weighted ELBO during a warm-up, with the estimator named), the test column
    the ELBO."""
    trained = f"train iwae-{config.particles}" if config.objective == "iwae" else f"train elbo ({config.elbo})"
    if config.free_bits > 0 and config.objective == "elbo":
        trained = f"train elbo, {config.free_bits:g} free bits ({config.elbo})"
    if config.labels is not None:
        trained = "train M2 objective"  # labeled and unlabeled ELBOs plus the classifier term
    if config.visible_quadrants is not None and record["epoch"] <= config.baseline_epochs:
        trained = "train baseline -nll"  # the baseline trains alone first (objectives.py)
    name = "val" if "val_elbo" in record else "test"
    extra = f"  q(y|x) accuracy {record[f'{name}_accuracy']:.2%}" if f"{name}_accuracy" in record else ""
    if f"{name}_baseline_nll" in record:
        extra = f"  baseline {name} nll {record[f'{name}_baseline_nll']:8.3f}"
    return (
        f"epoch {record['epoch']:3d}/{config.epochs}  {trained} {record['train_elbo']:9.3f}  "
        f"{name} elbo {record[f'{name}_elbo']:9.3f} nats/image{extra}  {record['seconds']:6.1f}s"
    )
