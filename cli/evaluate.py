"""``pyro-vae evaluate``: the test-set ELBO, its parts, the IWAE log-likelihood and more."""

from __future__ import annotations

import json

import click

from pyro_vae.config import MAX_SEED
from pyro_vae.errors import PyroVAEError

from .options import DEVICE, launch_elsewhere, nproc_option


@click.command("evaluate")
@click.argument("run_dir", required=False, type=click.Path())
@click.option("--k", type=click.IntRange(min=1), default=1000, show_default=True, help="Importance samples per image for the IWAE bound (--k 1 gives the ELBO).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True, help="Seed of the draws.")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--data-dir", help="Folder holding MNIST/raw/, FashionMNIST/raw/, ... [default: the run's, else $PYRO_VAE_DATA].")
@click.option("--fid/--no-fid", default=True, show_default=True, help="The Frechet distance of 10,000 samples (as many as the test images, if fewer) to the test images in the judging classifier's feature space (MNIST's ships with the package; another source's is trained once, about a minute, then cached). --no-fid: no FID on any run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@nproc_option
def evaluate_command(run_dir, k, seed, device, data_dir, fid, as_json, nproc):
    """Evaluate RUN (default: the latest run) on its source's test images, nats per image. Under
    torchrun (or with --nproc N) the processes share the importance-weighted passes, with the same
    draws, so the bound is the one process's."""
    from pyro_vae.classifier import classifier_available, load_or_train_classifier
    from pyro_vae.distributed import join
    from pyro_vae.evaluation import evaluate
    from pyro_vae.runs import latest_run, load_run

    run_dir = run_dir or latest_run()
    if launch_elsewhere(nproc):
        return
    world, target = join(device)
    run = load_run(run_dir, device=str(target))
    classifier = None
    completion = not run.vae.draws_from_prior  # the completion CVAE: no prior samples, no FID
    wanted = run.config.conditional or (fid and not completion)
    if wanted and world.main and classifier_available(run.config) is None:
        echo = None if as_json else click.echo
        classifier = load_or_train_classifier(run.config, run.device, echo=echo, data_dir=data_dir)
    result = evaluate(run, k=k, seed=seed, data_dir=data_dir, classifier=classifier, world=world, fid=fid)
    if result is None:  # not rank 0: it has done its share
        return
    record = {"run": str(run.path), **result.to_dict()}
    tracked = _log_to_mlflow(run.path, record, k, seed)
    if as_json:
        click.echo(json.dumps(record))
        return
    target = "log p(x|y)" if result.conditional else "log p(x)"
    if result.classification_accuracy is not None:
        target = "log p(x), y drawn"
    if completion:
        target = "log p(x_hidden|x_visible)"
    channels, height, width = run.config.image_shape
    click.echo(f"run {run.path}: {result.n_images} test images of {channels}x{height}x{width}, nats per image")
    click.echo(f"  ELBO                         {result.elbo:10.3f}")
    click.echo(f"  reconstruction E[log p(x|z)] {result.reconstruction:10.3f}")
    if result.kl_pyro is not None:
        click.echo(f"  KL closed form (ours)        {result.kl:10.4f}")
        click.echo(f"  KL (Pyro, analytic)          {result.kl_pyro:10.4f}   difference {result.kl_difference:.2e}")
    else:
        click.echo(f"  KL, Monte Carlo over the k draws (no closed form for this prior and posterior) {result.kl:10.4f}")
    click.echo(f"  IWAE {target}, k={result.k:<7d}   {result.log_likelihood:10.3f} +- {result.log_likelihood_stderr:.3f} (s.e.)")
    click.echo(f"  loss spread on one batch: Trace_ELBO {result.elbo_spread_trace:.3f}, TraceMeanField_ELBO {result.elbo_spread_analytic:.3f}")
    click.echo(f"  gradient variance on one batch: Trace_ELBO {result.gradient_variance_trace:.4g} +- {result.gradient_variance_trace_stderr:.2g}, "
               f"TraceMeanField_ELBO {result.gradient_variance_analytic:.4g} +- {result.gradient_variance_analytic_stderr:.2g}")
    if result.log_likelihood_dequantized is not None:
        click.echo(f"  IWAE on dequantized 8-bit test images {result.log_likelihood_dequantized:10.3f}")
        click.echo(f"  bits per dimension (8-bit images)   {result.bits_per_dim:10.4f}")
    elif result.likelihood == "discretized-logistic":
        click.echo(f"  bits per dimension (8-bit images, exact likelihood) {result.bits_per_dim:10.4f}")
    else:
        click.echo(f"  bits per binary pixel        {result.bits_per_dim:10.4f}")
    if result.png_bits_per_dim is not None:
        click.echo(f"  the same test images as files: PNG {result.png_bits_per_dim:.4f}, lossless WebP {result.webp_bits_per_dim:.4f} bits per dimension")
    active = f"{result.active_units} of {run.config.z_dim}"
    if result.active_units_groups is not None:
        active = ", ".join(f"z_{level} {count} of {dim}" for level, (count, dim)
                           in enumerate(zip(result.active_units_groups, run.config.group_dims), start=1))  # fmt: skip
    click.echo(f"  active units (Cov_x E[z|x] > 0.01) {active}")
    if result.fid is not None:
        click.echo(f"  FID in the classifier's feature space {result.fid:10.3f}   (classifier sha256 {result.classifier_sha256[:16]})")
    if result.classification_accuracy is not None:
        click.echo(f"  classification accuracy, argmax q(y|x) {result.classification_accuracy:.2%}")
    if result.baseline_nll is not None:
        click.echo(f"  -log p(x_hidden|x_visible): CVAE {result.cvae_nll:.3f}, baseline network {result.baseline_nll:.3f} "
                   f"({result.visible_quadrants} visible quadrants)")
    if result.digit_accuracy is not None:
        click.echo(f"  class accuracy of samples {result.digit_accuracy:.1%}   (classifier sha256 {result.classifier_sha256[:16]})")
    for figure, reason in (result.not_measured or {}).items():
        if figure == "fid" and not fid:
            continue
        if figure == "digit_accuracy" and not result.conditional:
            continue
        click.echo(f"  {'FID' if figure == 'fid' else 'class accuracy of samples'}: not measured ({reason})")
    click.echo(f"  ({result.seconds:.1f} s)")
    if tracked:
        click.echo(f"  logged to the run's MLflow run as {tracked}")


def _log_to_mlflow(run_path, evaluation: dict, k: int, seed: int) -> str | None:
    """A run trained with --track mlflow gets its evaluation; without MLflow installed, a note (the
    evaluation is done and printed regardless)."""
    from pyro_vae.tracking import log_evaluation

    try:
        return log_evaluation(run_path, evaluation, k, seed)
    except PyroVAEError as error:
        click.echo(f"pyro-vae: note: not logged to MLflow: {error}", err=True)
        return None
