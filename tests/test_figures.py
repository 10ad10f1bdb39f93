"""Figures, run listing and Fashion-MNIST, through the CLI's ``main`` in this process on real data.

Each figure must be written, have the size its declaration gives, and not be blank; the same seed
must give the same bytes. Fashion-MNIST comes from Debian's dataset-fashion-mnist (.ci/run installs
it); a test that needs it and cannot find it fails.
"""

from __future__ import annotations

import json

import matplotlib.image
import pytest
import torch

from conftest import run_here
from pyro_vae.data import load_dataset
from pyro_vae.sources.named import DEBIAN_FASHION_MNIST
from pyro_vae.plotting import FIGURE_DPI, FIGURE_SIZES

pytestmark = pytest.mark.slow

RUN_FIGURES = {"elbo.png", "reconstructions.png", "latent.png", "interpolations.png"}


def assert_figure(path):
    assert path.is_file(), f"{path.name} was not written"
    pixels = matplotlib.image.imread(path)
    width, height = FIGURE_SIZES[path.name]
    assert pixels.shape[:2] == (round(height * FIGURE_DPI), round(width * FIGURE_DPI)), path.name
    grey = pixels[..., :3].mean(-1)
    assert grey.var() > 0.01, f"{path.name} looks blank (pixel variance {grey.var():.4f})"
    # the pictured area holds more than a handful of distinct grey levels (images, not just axes)
    assert len(set((grey * 255).round().flatten().tolist())) > 20, path.name


@pytest.fixture(scope="session")
def fashion_root(data_root):
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"Fashion-MNIST not found in {DEBIAN_FASHION_MNIST}: apt-get install dataset-fashion-mnist")
    return data_root


@pytest.fixture(scope="session")
def fashion_run(tmp_path_factory, fashion_root):
    """One epoch of a small conditional VAE with a 2-D latent on Fashion-MNIST, via the CLI; train
    ends by plotting every figure, the manifold and the style grid included."""
    runs = tmp_path_factory.mktemp("fashion-runs")
    out = runs / "fashion-cvae"
    result = run_here(
        "train", "--dataset", "fashion-mnist", "--conditional", "--z-dim", "2", "--hidden-dims", "128",
        "--epochs", "1", "--device", "cpu", "--quiet", "--out", out,
        env_extra={"PYRO_VAE_DATA": str(fashion_root), "PYRO_VAE_RUNS": str(runs)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_fashion_mnist_loads_from_the_debian_package(fashion_root):
    data = load_dataset("fashion-mnist", str(fashion_root), torch.device("cpu"), binarize=False)
    mnist = load_dataset("mnist", str(fashion_root), torch.device("cpu"), binarize=False)
    assert data.train.images.shape == (60000, 784) and data.test.images.shape == (10000, 784)
    assert sorted(data.test.labels.unique().tolist()) == list(range(10))
    assert (data.test.labels.bincount() == 1000).all()  # Fashion-MNIST's test split is balanced
    # clothes cover far more of the frame than digits: mean intensity 0.286 vs 0.131
    assert abs(data.train.images.float().mean().item() / 255 - 0.286) < 0.01
    assert abs(mnist.train.images.float().mean().item() / 255 - 0.131) < 0.01


def test_train_ends_by_plotting_every_figure_of_a_2d_conditional_run(fashion_run):
    for name in RUN_FIGURES | {"manifold.png", "style.png"}:
        assert_figure(fashion_run / name)


def test_plot_is_deterministic_for_a_seed_and_changes_with_it(fashion_run, tmp_path, fashion_root):
    env = {"PYRO_VAE_DATA": str(fashion_root)}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        result = run_here("plot", fashion_run, "--seed", seed, "--device", "cpu", "--out", tmp_path / name, env_extra=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("wrote ") == 6
    for figure in ("reconstructions.png", "interpolations.png", "style.png", "latent.png"):
        assert (tmp_path / "a" / figure).read_bytes() == (tmp_path / "b" / figure).read_bytes(), figure
    assert (tmp_path / "a" / "style.png").read_bytes() != (tmp_path / "c" / "style.png").read_bytes()


def test_plot_of_a_vae_with_a_32d_latent(tmp_path, data_root):
    """A plain VAE: a PCA latent figure, no manifold (z is not 2-D), no style grid; --no-plot
    keeps train from plotting."""
    env = {"PYRO_VAE_DATA": str(data_root)}
    run = tmp_path / "vae"
    result = run_here("train", "--epochs", "1", "--hidden-dims", "128", "--device", "cpu", "--quiet", "--no-plot",
                     "--out", run, env_extra=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not list(run.glob("*.png"))
    result = run_here("plot", run, "--device", "cpu", env_extra=env)
    assert result.returncode == 0, result.stderr
    assert {path.name for path in run.glob("*.png")} == RUN_FIGURES
    for name in RUN_FIGURES:
        assert_figure(run / name)


def test_runs_lists_the_runs_that_exist(tmp_path, data_root):
    env = {"PYRO_VAE_DATA": str(data_root), "PYRO_VAE_RUNS": str(tmp_path)}
    empty = run_here("runs", "--json", env_extra=env)
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    for name, extra in (("plain", ["--track", "tensorboard"]), ("cond", ["--conditional", "--elbo", "trace"])):
        result = run_here("train", "--epochs", "1", "--hidden-dims", "64", "--subset", "5000", "--device", "cpu", "--quiet",
                         "--no-plot", "--out", tmp_path / name, *extra, env_extra=env)  # fmt: skip
        assert result.returncode == 0, result.stderr
    (tmp_path / "not-a-run").mkdir()
    listed = run_here("runs", "--json", env_extra=env)
    assert listed.returncode == 0, listed.stderr
    runs = {run["name"]: run for run in json.loads(listed.stdout)}
    assert set(runs) == {"plain", "cond"}
    assert runs["cond"]["conditional"] is True and runs["cond"]["elbo"] == "trace"
    assert runs["plain"]["conditional"] is False and runs["plain"]["likelihood"] == "bernoulli"
    for run in runs.values():
        assert run["epochs_done"] == 1 and run["epochs"] == 1
        assert -350 < run["best_test_elbo"] < -90  # one epoch of 5,000 images: learning, not yet good
        metrics = [json.loads(line) for line in (tmp_path / run["name"] / "metrics.jsonl").read_text().splitlines()]
        assert run["best_test_elbo"] == max(record["test_elbo"] for record in metrics)
    table = run_here("runs", env_extra=env)
    assert table.returncode == 0
    assert "plain" in table.stdout and "cond" in table.stdout and "not-a-run" not in table.stdout
    check_tensorboard_log(tmp_path / "plain")


def check_tensorboard_log(run_dir):
    """--tensorboard logged the same per-epoch ELBOs that metrics.jsonl holds."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for split in ("train", "test"):
        logged = [(event.step, event.value) for event in events.Scalars(f"elbo/{split}")]
        assert logged == [(record["epoch"], pytest.approx(record[f"{split}_elbo"])) for record in metrics]
