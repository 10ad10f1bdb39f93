"""A trained run used image by image: the latent code of each image, its reconstruction, its score.

- ``encode``: for every latent group, the posterior's mean and standard deviation,
  E_q[z_l | z_>l, x] and sd_q[z_l | z_>l, x], each group given the means above it (one group: q(z | x));
  ``samples`` adds draws z ~ q(z | x) down the groups. A conditional run encodes each image with its
  label, q(z | x, y); the semi-supervised M2 sums y out under its own classifier,
  q(z | x) = sum_y q(y | x) q(z | x, y) (the mixture's mean and standard deviation), and gives q(y | x).
- ``reconstruct``: E[x | z] at z = the posterior mean of z_1 (M2: with y = argmax q(y | x)).
- ``score``: per image, the IWAE bound L_k(x) <= log p(x), bits per dimension, and the
  out-of-distribution scores of ``outliers.py``.

Images come from any source (``load_source``: a named dataset, a folder, an array file), or as arrays
or tensors from Python (``as_split``), in the layouts and types a ``.npy`` source may have; they are
converted to the run's channels and size as ``train`` converts them, and binarized once with the fixed
seed for a Bernoulli run, as ``evaluate`` binarizes its test split. Every pass goes over chunks of
images, on several processes when ``world`` has them (each chunk's result gathered in order).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import time
from pathlib import Path

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from .bounds import dequantize, image_log_probability, bits_per_dim, images_per_batch, split_bounds
from .codecs import CODECS, codec_bits
from .data import Split, binarize_fixed, load_split
from .distributed import SINGLE, World, shared_chunks, stream_seed
from .errors import PyroVAEError
from .outliers import SCORES, complexity, latent_sites, likelihood_regret
from .sampling import check_output_path, displayed, save_images
from .sources import array_images, convert

SPLITS = ("auto", "test", "train", "all")
CHUNK = 1000  # images per encoder pass
REGRET_CHUNK = 250  # images per likelihood-regret optimization
# Adam on the posterior's shifts; chosen on validation images (results/out-of-distribution/choice.json):
# AUROC 0.79, 0.83, 0.90, 0.91 after 10, 20, 50, 100 steps at 0.1; 0.86 and 0.89 after 20 and 50 at 0.03
REGRET_STEPS, REGRET_LR = 50, 0.1


def source_config(config, dataset: str):
    """The run's configuration reading ``dataset`` instead, converted to the run's (C, H, W); every
    image of each split (no --subset, no --validation)."""
    channels, height, width = config.image_shape
    return dataclasses.replace(config, dataset=dataset, image_size=f"{height}x{width}", channels=channels,
                               subset=None, validation=0)  # fmt: skip


def load_source(run, dataset: str, split: str = "auto", data_dir: str | None = None) -> tuple[Split, list | None]:
    """``split`` of ``dataset`` as ``run`` sees its images, and a folder's file names (else None);
    ``auto``: the test split of a source that has its own, else every image (``data.load_split``)."""
    if split not in SPLITS:
        raise PyroVAEError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    return load_split(source_config(run.config, dataset), split, run.device, data_dir)


def as_split(run, images, labels=None) -> Split:
    """Images in memory (uint8 0-255 or floats in [0, 1]; (N, H, W), (N, H, W, C) or (N, C, H, W)) as
    the run's split: converted to its channels and size, binarized for a Bernoulli run."""
    channels, height, width = run.config.image_shape
    pixels = convert(array_images(images), (height, width), channels).reshape(len(images), -1)
    count = pixels.shape[0]
    labels = torch.full((count,), -1, dtype=torch.int64) if labels is None else torch.as_tensor(np.asarray(labels)).long()
    if labels.shape != (count,):
        raise PyroVAEError(f"labels must be one per image, shape ({count},), got {tuple(labels.shape)}")
    split = Split(pixels.to(run.device), labels.to(run.device))
    return binarize_fixed(split) if run.vae.observation.data == "binarized" else split


def given_labels(vae, labels: torch.Tensor) -> torch.Tensor | None:
    """The one-hot y a conditional run encodes with: the images' own labels, all of which it must
    have; None for a model that reads none."""
    if not vae.reads_labels:
        return None
    classes = vae.config.num_classes
    if (labels < 0).any() or (labels >= classes).any():
        raise PyroVAEError(f"this conditional run encodes each image with its label (0 to {classes - 1}); "
                           f"these images have none, or other ones")  # fmt: skip
    return vae.one_hot(labels)


def per_chunk(split: Split, size: int, world: World, step) -> list:
    """``step(index)`` for each chunk of ``size`` images in order, shared among the processes and
    gathered (``distributed.shared_chunks``)."""
    return shared_chunks(split.index_chunks(size), world, step)


@torch.no_grad()
def encode(run, split: Split, samples: int = 0, seed: int = 0, world: World = SINGLE) -> dict[str, np.ndarray]:
    """``{site}_loc`` and ``{site}_scale`` (n, d) for every latent site (``z``, or ``z_N`` ... ``z_1``),
    with ``samples``: ``{site}_samples`` (n, samples, d); M2 adds ``class_probs`` (n, classes); and the
    images' ``labels`` (-1: none)."""
    vae, sites = run.vae.eval(), latent_sites(run.vae)

    def step(index):
        x, labels = split.batch(index), split.labels[index.to(split.labels.device)]
        y = given_labels(vae, labels.to(x.device))
        codes = {}
        for site, (loc, scale) in zip(sites, vae.posterior_parameters(x, y)):
            codes[f"{site}_loc"], codes[f"{site}_scale"] = loc.cpu(), scale.cpu()
        if samples:
            torch.manual_seed(stream_seed(seed, "encode", int(index[0])))
            with pyro.plate("particles", samples, dim=-2), pyro.validation_enabled(False):
                trace = poutine.trace(vae.guide).get_trace(x, y)
            codes.update({f"{site}_samples": trace.nodes[site]["value"].transpose(0, 1).cpu() for site in sites})
        if hasattr(vae, "classify"):
            codes["class_probs"] = vae.classify(x).probs.cpu()
        return codes

    chunks = per_chunk(split, CHUNK, world, step)
    codes = {key: torch.cat([chunk[key] for chunk in chunks]).numpy() for key in chunks[0]}
    return {**codes, "labels": split.labels.cpu().numpy()}


@torch.no_grad()
def reconstruct(run, split: Split, world: World = SINGLE) -> torch.Tensor:
    """E[x | z = posterior mean of z_1] per image: (n, H, W), or (n, H, W, 3), floats in [0, 1]."""
    vae = run.vae.eval()

    def step(index):
        x, labels = split.batch(index), split.labels[index.to(split.labels.device)]
        y = given_labels(vae, labels.to(x.device))
        if hasattr(vae, "classify"):  # M2 decodes with the class its classifier gives
            y = vae.one_hot(vae.classify(x).logits.argmax(-1))
        z = vae.posterior_parameters(x, y)[-1][0]
        return vae.decode_mean(z, y, x).cpu()

    return displayed(torch.cat(per_chunk(split, CHUNK, world, step)), run.config.image_shape)


def score(run, split: Split, k: int = 100, scores: tuple[str, ...] = ("nll", "complexity"), codec: str = "webp",
          seed: int = 0, world: World = SINGLE, regret_steps: int = REGRET_STEPS, regret_lr: float = REGRET_LR,
          seconds: dict | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Per image: ``log_likelihood`` (L_k, nats of what the likelihood scores), ``bits_per_dim`` and
    each of ``scores`` (``outliers.SCORES``), higher meaning more out of distribution; with
    ``complexity``, also the codec's ``{codec}_bits``. The draws of each chunk of images are keyed by
    the seed and the chunk, so several processes give one process's numbers. ``seconds``, if given,
    receives the time each score took (``nll`` the bound's, the others what they add)."""
    seconds = {} if seconds is None else seconds
    started = time.perf_counter()
    unknown = [name for name in scores if name not in SCORES]
    if unknown or codec not in CODECS:
        raise PyroVAEError(f"scores are {', '.join(SCORES)} and codecs {', '.join(CODECS)}; got {unknown or codec}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise PyroVAEError(f"--k must be a positive integer (the number of importance samples), got {k!r}")
    vae = run.vae.eval()
    if "complexity" in scores and vae.scored_pixels != run.config.pixels:
        raise PyroVAEError("the complexity score compares the whole image with a codec; this run scores only "
                           "the hidden pixels (image completion): use --scores nll,regret")  # fmt: skip
    labels = True if vae.reads_labels else None
    if labels:
        given_labels(vae, split.labels)
    batch = images_per_batch(k, run.device, run.config.network)
    discrete = vae.observation.discrete
    scored = split if discrete else dequantize(split, seed)
    bounds = split_bounds(vae, scored, labels, k, batch, seed, world, "score")[0].cpu()
    log_probability = image_log_probability(bounds, not discrete, vae.scored_pixels).double().numpy()
    seconds["nll"] = time.perf_counter() - started
    result = {"log_likelihood": bounds.double().numpy(),
              "bits_per_dim": bits_per_dim(log_probability, False, vae.scored_pixels),
              "nll": -log_probability}  # fmt: skip
    if "complexity" in scores:
        started, shape = time.perf_counter(), run.config.image_shape
        bits = np.concatenate(per_chunk(split, CHUNK, world, lambda index: codec_bits(split.batch(index), shape, codec)))
        result[f"{codec}_bits"], result["complexity"] = bits, complexity(result["nll"], bits)
        seconds["complexity"] = time.perf_counter() - started
    if "regret" in scores:
        started = time.perf_counter()
        result["regret"] = regret(run, split, seed, world, regret_steps, regret_lr)
        seconds["regret"] = time.perf_counter() - started
    return {name: value for name, value in result.items() if name not in SCORES or name in scores}


def regret(run, split: Split, seed: int = 0, world: World = SINGLE, steps: int = REGRET_STEPS,
           learning_rate: float = REGRET_LR) -> np.ndarray:  # fmt: skip
    """The likelihood regret of every image (``outliers.likelihood_regret``), chunk by chunk."""
    vae = run.vae.eval()

    def step(index):
        torch.manual_seed(stream_seed(seed, "regret", int(index[0])))
        x, labels = split.batch(index), split.labels[index.to(split.labels.device)]
        return likelihood_regret(vae, x, given_labels(vae, labels.to(x.device)), steps, learning_rate).cpu()

    return torch.cat(per_chunk(split, REGRET_CHUNK, world, step)).double().numpy()


# --- files ------------------------------------------------------------------------------------------


def save_codes(codes: dict[str, np.ndarray], path: str | Path, names: list | None = None) -> Path:
    """``.npz``: every array of ``encode`` (and ``names``); ``.npy``: the posterior means of every
    site side by side, (n, sum of the sites' sizes), the top site first; ``.csv``: a row per image,
    index, name, label, then each site's means and scales."""
    path = check_output_path(path, CODE_FILES)
    means = [key for key in codes if key.endswith("_loc")]
    if path.suffix.lower() == ".npz":
        extra = {"names": np.array(names)} if names is not None else {}
        return _written(path, lambda handle: np.savez(handle, **codes, **extra))
    if path.suffix.lower() == ".npy":
        return _written(path, lambda handle: np.save(handle, np.concatenate([codes[key] for key in means], axis=1)))
    columns = {"label": codes["labels"]}
    for key in [*means, *(key.replace("_loc", "_scale") for key in means), *(["class_probs"] if "class_probs" in codes else [])]:
        columns.update({f"{key}_{dim}": codes[key][:, dim] for dim in range(codes[key].shape[1])})
    return write_csv(path, columns, names)


def save_reconstructions(inputs: torch.Tensor, reconstructions: torch.Tensor, path: str | Path) -> Path:
    """``.png``: each input beside its reconstruction, pairs in rows of at most eight; ``.npy``:
    (n, 2, H, W) or (n, 2, H, W, 3) float32, input then reconstruction. Both (n, H, W[, 3])."""
    path = check_output_path(path, PAIR_FILES)
    pairs = torch.stack([inputs.float().cpu(), reconstructions.float().cpu()], dim=1)
    if path.suffix.lower() == ".npy":
        return _written(path, lambda handle: np.save(handle, pairs.numpy().astype(np.float32)))
    return save_images(pairs.flatten(0, 1), path, nrow=2 * min(8, len(pairs)))


def write_csv(path: str | Path, columns: dict[str, np.ndarray], names: list | None = None) -> Path:
    """One row per image: ``index``, ``name`` (where there are names), then ``columns`` in order."""
    path = check_output_path(path, SCORE_FILES)
    header = ["index", *(["name"] if names is not None else []), *columns]
    count = len(next(iter(columns.values())))

    def write(handle):
        text = io.TextIOWrapper(handle, newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        for row in range(count):
            writer.writerow([row, *([names[row]] if names is not None else []),
                             *(_cell(values[row]) for values in columns.values())])  # fmt: skip
        text.flush()
        text.detach()

    return _written(path, write)


def _cell(value) -> str:
    return str(int(value)) if np.issubdtype(type(value), np.integer) else f"{float(value):.6g}"


CODE_FILES = {".npz": "every array", ".npy": "the means side by side", ".csv": "a row per image"}
PAIR_FILES = {".png": "pairs in a grid", ".npy": "array"}
SCORE_FILES = {".csv": "a row per image"}


def _written(path: Path, write) -> Path:
    """``write(handle)`` into a temporary file, renamed to ``path`` once whole."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise PyroVAEError(f"cannot write {path}: {error.strerror or error}") from None
    return path
