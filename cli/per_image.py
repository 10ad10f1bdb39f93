"""``pyro-vae encode``, ``reconstruct`` and ``score``: a trained run used on each image of a source."""

from __future__ import annotations

import json
import time

import click

from pyro_vae.config import MAX_SEED

from .options import DEVICE, launch_elsewhere, nproc_option

SPLIT_HELP = ("Which images of the source: test, train, all (a source's own train then test split), or auto: the "
              "test split of a source that has its own, else every image.")  # fmt: skip


def source_options(command):
    """RUN, --dataset, --split, --data-dir, --device, --seed and --nproc, shared by the three commands."""
    for option in reversed([
        click.argument("run_dir", type=click.Path()),
        click.option("--dataset", help="The images: mnist, fashion-mnist, cifar10, svhn, a folder of images, or a .npy/.npz "
                     "array, converted to the run's channels and size as train converts them [default: the run's own source]."),
        click.option("--split", type=click.Choice(["auto", "test", "train", "all"]), default="auto", show_default=True, help=SPLIT_HELP),
        click.option("--data-dir", help="Folder holding MNIST/raw/, FashionMNIST/raw/, ... [default: the run's, else $PYRO_VAE_DATA]."),
        click.option("--device", type=DEVICE, default="auto", show_default=True),
        click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True, help="Seed of the draws."),
        nproc_option,
    ]):  # fmt: skip
        command = option(command)
    return command


def _open(run_dir, dataset, split, data_dir, device):
    """(world, run, images, file names, source name) in this process."""
    from pyro_vae.distributed import join
    from pyro_vae.per_image import load_source
    from pyro_vae.runs import load_run

    world, target = join(device)
    run = load_run(run_dir, device=str(target))
    dataset = dataset or run.config.dataset
    images, names = load_source(run, dataset, split, data_dir)
    return world, run, images, names, dataset


@click.command("encode")
@source_options
@click.option("--sample", "samples", type=click.IntRange(0, 1000), default=0, show_default=True, help="Also N draws z ~ q(z|x) of every image (in .npz only).")
@click.option("--out", required=True, help="Output file: .npz (every array: each latent site's loc and scale, draws, labels, file names), "
              ".npy (the posterior means of every site side by side, the top site first) or .csv (a row per image).")
def encode_command(run_dir, dataset, split, data_dir, device, seed, nproc, samples, out):
    """The latent code of each image: the posterior mean and standard deviation of every latent group
    (each group given the means above it). A conditional run encodes each image with its label; the
    semi-supervised M2 sums the label out under its classifier q(y|x) and adds q(y|x)."""
    from pyro_vae.errors import PyroVAEError
    from pyro_vae.per_image import CODE_FILES, encode, save_codes
    from pyro_vae.sampling import check_output_path

    check_output_path(out, CODE_FILES)
    if samples and not out.lower().endswith(".npz"):
        raise PyroVAEError("--sample writes draws into a .npz only; give --out FILE.npz")
    if launch_elsewhere(nproc):
        return
    started = time.perf_counter()
    world, run, images, names, dataset = _open(run_dir, dataset, split, data_dir, device)
    codes = encode(run, images, samples=samples, seed=seed, world=world)
    if world.main:
        path = save_codes(codes, out, names)
        click.echo(f"encoded {len(images)} images of {dataset} with {run.path} into {path} ({time.perf_counter() - started:.1f} s)")


@click.command("reconstruct")
@source_options
@click.option("--n", type=click.IntRange(min=1), help="The first N images [default: 32 for a .png, every image for a .npy].")
@click.option("--out", required=True, help="Output file: .png (each input beside its reconstruction E[x|z], z the posterior mean) or "
              ".npy ((n, 2, H, W) or (n, 2, H, W, 3) float32 in [0, 1], input then reconstruction).")
def reconstruct_command(run_dir, dataset, split, data_dir, device, seed, nproc, n, out):
    """Each image beside its reconstruction, the likelihood's mean at the posterior mean, in the images'
    size and colour as the run sees them (binarized for a Bernoulli run)."""
    import torch

    from pyro_vae.per_image import PAIR_FILES, reconstruct, save_reconstructions
    from pyro_vae.sampling import check_output_path, displayed

    check_output_path(out, PAIR_FILES)
    if launch_elsewhere(nproc):
        return
    world, run, images, names, dataset = _open(run_dir, dataset, split, data_dir, device)
    if n is None and not out.lower().endswith(".npy"):
        n = 32  # a grid to look at; an array takes every image
    if n is not None:
        images = images.take(torch.arange(min(n, len(images)), device=images.labels.device))
    reconstructions = reconstruct(run, images, world=world)
    if world.main:
        path = save_reconstructions(displayed(images.floats(), run.config.image_shape), reconstructions, out)
        click.echo(f"wrote {len(images)} images of {dataset} and their reconstructions by {run.path} to {path}")


@click.command("score")
@source_options
@click.option("--k", type=click.IntRange(min=1), default=100, show_default=True, help="Importance samples per image for the IWAE bound on log p(x).")
@click.option("--scores", default="nll,complexity", show_default=True, help="Out-of-distribution scores, higher meaning more out of "
              "distribution: nll (-log p(x); known to rank simpler outliers as more likely: Nalisnick et al. 2019), complexity "
              "(nll minus the image's lossless-compressed length, Serra et al. 2020), regret (the ELBO gained by re-fitting "
              "the posterior to the one image, likelihood regret: Xiao et al. 2020; slower).")
@click.option("--codec", type=click.Choice(["png", "webp"]), default="webp", show_default=True, help="The lossless codec of the complexity score (Pillow: PNG optimize=True, lossless WebP method 6; WebP told Fashion-MNIST from MNIST better on validation images, AUROC 0.992 against 0.910).")
@click.option("--regret-steps", type=click.IntRange(0, 10000), default=50, show_default=True, help="Adam steps of the likelihood regret's re-fit.")
@click.option("--regret-lr", type=click.FloatRange(min=0, min_open=True, max=10), default=0.1, show_default=True, help="Their step size (in units of the posterior's scale).")
@click.option("--reference", help="A source whose test split (else every image) is in distribution: prints each score's AUROC "
              "for telling the scored images from it (1: every scored image scores higher). The run's own source gives its test split.")
@click.option("--out", help="Output file: .csv, a row per image (index, file name, label, log_likelihood, bits_per_dim, scores).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (means, AUROCs, seconds per 1,000 images) instead of the table.")
def score_command(run_dir, dataset, split, data_dir, device, seed, nproc, k, scores, codec, regret_steps, regret_lr, reference,
                  out, as_json):
    """Score each image: the IWAE bound on log p(x), bits per dimension, and out-of-distribution scores."""
    from pyro_vae.errors import PyroVAEError
    from pyro_vae.outliers import SCORES, auroc
    from pyro_vae.per_image import SCORE_FILES, load_source, score, write_csv
    from pyro_vae.sampling import check_output_path

    chosen = tuple(name.strip() for name in scores.split(",") if name.strip())
    if not chosen or any(name not in SCORES for name in chosen):
        raise PyroVAEError(f"--scores takes a comma-separated list of {', '.join(SCORES)}; got {scores!r}")
    if out is not None:
        check_output_path(out, SCORE_FILES)
    if launch_elsewhere(nproc):
        return
    world, run, images, names, dataset = _open(run_dir, dataset, split, data_dir, device)
    seconds = {}
    options = dict(k=k, scores=chosen, codec=codec, seed=seed, world=world, regret_steps=regret_steps, regret_lr=regret_lr)
    result = score(run, images, seconds=seconds, **options)
    aurocs = None
    if reference is not None:
        inliers = score(run, load_source(run, reference, "auto", data_dir)[0], **options)
        aurocs = {name: auroc(inliers[name], result[name]) for name in chosen}
    if not world.main:
        return
    if out is not None:
        labels = images.labels.cpu().numpy()
        write_csv(out, {**({"label": labels} if (labels >= 0).any() else {}), **result}, names)
    summary = {"run": str(run.path), "dataset": dataset, "split": split, "n_images": len(images), "k": k, "codec": codec,
               "means": {name: float(values.mean()) for name, values in result.items()},
               "reference": reference, "auroc": aurocs,
               "seconds_per_1000_images": {name: 1000 * value / len(images) for name, value in seconds.items()}}  # fmt: skip
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"scored {len(images)} images of {dataset} with {run.path} (k={k}), means per image:")
    for name, mean in summary["means"].items():
        click.echo(f"  {name:<16} {mean:12.4f}")
    for name, value in (aurocs or {}).items():
        click.echo(f"  AUROC {name:<10} {value:.4f}   ({dataset} against {reference})")
    click.echo("  seconds per 1,000 images: " + ", ".join(f"{name} {value:.2f}" for name, value in summary["seconds_per_1000_images"].items()))
    if out is not None:
        click.echo(f"  wrote a row per image to {out}")
