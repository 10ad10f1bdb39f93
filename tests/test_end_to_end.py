"""End-to-end on real MNIST: training quality, the installed CLI, and real conditioning.

These are the slow checks (marked ``slow``); CI runs them all.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CLASSIFIER_SUBSET, run_cli, run_here
from pyro_vae import Config, evaluate, load_run, train
from pyro_vae.classifier import accuracy

pytestmark = pytest.mark.slow

# A short conditional run with the default design on the first 20,000 images (the digit_classifier
# fixture's split, so `evaluate` finds that classifier): the accuracy test and the CLI tests share it.
SHORT_CVAE_EPOCHS = 2


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def cvae_run(runs_root, data_root):
    """A conditional run trained through the installed `pyro-vae` entry point."""
    out = runs_root / "cvae"
    result = run_cli(
        "train", "--conditional", "--epochs", SHORT_CVAE_EPOCHS, "--subset", CLASSIFIER_SUBSET, "--device", "cpu", "--quiet",
        "--out", out, env_extra={"PYRO_VAE_DATA": str(data_root), "PYRO_VAE_RUNS": str(runs_root)},
    )
    assert result.returncode == 0, result.stderr
    return out


def test_one_epoch_of_the_default_vae_passes_minus_140_nats(data_root, tmp_path):
    run = train(Config(epochs=1, device="cpu", data_dir=str(data_root)), out=tmp_path / "vae", quiet=True)
    assert run.metrics[0]["test_elbo"] > -140
    assert run.metrics[0]["train_elbo"] < 0


def test_train_writes_config_checkpoint_and_metrics(cvae_run):
    config = json.loads((cvae_run / "config.json").read_text())
    assert config["conditional"] is True and config["epochs"] == SHORT_CVAE_EPOCHS
    records = [json.loads(line) for line in (cvae_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, SHORT_CVAE_EPOCHS + 1))
    for record in records:
        assert {"epoch", "train_elbo", "test_elbo", "seconds"} <= set(record)
        assert record["test_elbo"] < 0 and record["seconds"] > 0
    assert records[-1]["test_elbo"] > records[0]["test_elbo"]
    run = load_run(cvae_run, device="cpu")
    assert run.config.conditional and len(run.metrics) == SHORT_CVAE_EPOCHS


def test_cli_sample_digit_writes_png_and_npy(cvae_run, tmp_path, runs_root):
    env = {"PYRO_VAE_RUNS": str(runs_root)}
    png = tmp_path / "five.png"
    result = run_cli("sample", "--digit", "5", "--n", "64", "--out", png, env_extra=env)
    assert result.returncode == 0, result.stderr
    with Image.open(png) as image:
        assert image.size == (8 * 28 + 9 * 2, 8 * 28 + 9 * 2)  # 8x8 grid, 2-pixel padding
        assert np.asarray(image).std() > 10  # not blank
    npy = tmp_path / "x.npy"
    result = run_cli("sample", "--run", cvae_run, "--n", "100", "--out", npy, "--seed", "3")
    assert result.returncode == 0, result.stderr
    array = np.load(npy)
    assert array.shape == (100, 28, 28) and array.dtype == np.float32
    assert 0.0 <= array.min() and array.max() <= 1.0
    again = tmp_path / "again.npy"
    run_cli("sample", "--run", cvae_run, "--n", "100", "--out", again, "--seed", "3")
    np.testing.assert_array_equal(array, np.load(again))


def test_conditional_samples_are_the_asked_digit(cvae_run, digit_classifier):
    """>= 80% of `--digit d` samples are classified as d, averaged over the ten digits."""
    run = load_run(cvae_run, device="cpu")
    per_digit = []
    for digit in range(10):
        images = run.sample(n=200, digit=digit, seed=100 + digit)
        per_digit.append(accuracy(digit_classifier, images, torch.full((200,), digit)))
    mean_accuracy = sum(per_digit) / 10
    print(f"digit accuracy after {SHORT_CVAE_EPOCHS} epochs: {mean_accuracy:.3f}", per_digit)
    assert mean_accuracy >= 0.80, per_digit


def test_cli_evaluate_json_reports_every_figure(cvae_run, classifier_cache):
    """The MNIST judge that ships with the package is the one `evaluate` loads, hash and all: it trains
    and caches none."""
    from pyro_vae.classifier import SHIPPED_JUDGES

    result = run_here("evaluate", cvae_run, "--k", "10", "--json", "--device", "cpu",
                      env_extra={"XDG_CACHE_HOME": str(classifier_cache)})
    assert result.returncode == 0, result.stderr
    assert list(classifier_cache.rglob("*.pt")) == []
    figures = json.loads(result.stdout)
    required = {"elbo", "reconstruction", "kl", "kl_pyro", "log_likelihood",
                "log_likelihood_stderr", "k", "n_images", "digit_accuracy", "gradient_variance_trace",
                "gradient_variance_analytic", "gradient_variance_trace_stderr", "gradient_variance_analytic_stderr"}
    assert required <= set(figures)
    assert figures["n_images"] == 10000 and figures["k"] == 10
    assert abs(figures["kl"] - figures["kl_pyro"]) < 1e-3 * figures["kl"]
    assert figures["elbo"] == pytest.approx(figures["reconstruction"] - figures["kl"])
    assert figures["elbo"] < figures["log_likelihood"] < 0  # the IWAE bound is tighter
    assert 0 < figures["log_likelihood_stderr"] < 1
    assert figures["digit_accuracy"] >= 0.8
    assert figures["classifier_sha256"] == SHIPPED_JUDGES["mnist"][1] and figures["fid"] > 0
    assert figures["kl_estimator"] == "closed form"
    for name in ("trace", "analytic"):
        assert figures[f"gradient_variance_{name}"] > figures[f"gradient_variance_{name}_stderr"] > 0
    # the training log's last test ELBO is a one-sample estimate of the same bound
    last = json.loads((cvae_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert abs(last["test_elbo"] - figures["elbo"]) < 1.0


def test_no_fid_means_no_fid_on_a_conditional_run_too(cvae_run):
    """--no-fid: the conditional run's sample accuracy is still judged, but no FID is computed."""
    result = run_here("evaluate", cvae_run, "--k", "1", "--no-fid", "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["fid"] is None and figures["digit_accuracy"] >= 0.8 and "fid" not in (figures["not_measured"] or {})


def test_evaluate_is_determined_by_its_seed(tmp_path, data_root):
    config = Config(epochs=1, conditional=True, hidden_dims=(64,), z_dim=4, subset=1000, device="cpu", data_dir=str(data_root))
    run = train(config, out=tmp_path / "cvae", quiet=True, echo=None)
    first, again, other = (evaluate(run, k=3, seed=seed, data_dir=str(data_root)).to_dict() for seed in (5, 5, 6))
    for figures in (first, again, other):
        figures.pop("seconds")
    assert first == again
    assert first["log_likelihood"] != other["log_likelihood"]


def test_cli_compare_writes_table_json_and_figure_and_reuses_runs(tmp_path, data_root):
    out = tmp_path / "compare"
    arguments = ["compare", "--likelihoods", "bernoulli,continuous-bernoulli,discretized-logistic", "--epochs", "1",
                 "--hidden-dims", "64", "--z-dim", "4", "--k", "5", "--subset", "1000", "--device", "cpu", "--out", out]
    result = run_here(*arguments, env_extra={"PYRO_VAE_DATA": str(data_root)})
    assert result.returncode == 0, result.stderr
    records = json.loads((out / "compare.json").read_text())
    assert [r["variant"] for r in records] == ["bernoulli-analytic", "continuous-bernoulli-analytic",
                                               "discretized-logistic-analytic"]  # fmt: skip
    bernoulli, continuous, logistic = records
    assert logistic["log_likelihood_dequantized"] is None  # its log P is of the 8-bit image already
    assert logistic["bits_per_dim"] == pytest.approx(-logistic["log_likelihood"] / (784 * math.log(2)))
    assert bernoulli["log_likelihood"] < 0 and 0 < bernoulli["bits_per_dim"] < 1  # binary pixels
    assert continuous["log_likelihood_dequantized"] is not None and 0 < continuous["bits_per_dim"] < 8
    table = (out / "compare.md").read_text()
    assert "bernoulli-analytic" in table and "compare with none of them" in table
    assert bernoulli["png_bits_per_dim"] is None and 0 < logistic["webp_bits_per_dim"] < logistic["png_bits_per_dim"] < 8
    assert f"PNG {logistic['png_bits_per_dim']:.4f} bits/dim" in table  # the codecs on the same 8-bit images
    with Image.open(out / "compare.png") as image:
        assert image.size[0] > 400 and np.asarray(image.convert("L")).std() > 10
    again = run_here(*arguments, env_extra={"PYRO_VAE_DATA": str(data_root)})
    assert again.returncode == 0 and again.stdout.count("reusing") == 3, again.stdout


def test_the_committed_default_vae_loads_and_samples(tmp_path):
    """results/default-vae is the run the README reports; the current code must still load it."""
    from conftest import REPO

    run = load_run(REPO / "results" / "default-vae", device="cpu")
    assert run.config == Config.load_json(REPO / "results" / "default-vae" / "config.json")
    images = run.sample(n=16, seed=0)
    assert images.shape == (16, 28, 28) and images.std() > 0.1
    result = run_cli("sample", "--run", REPO / "results" / "default-vae", "--n", "16", "--out", tmp_path / "s.npy")
    assert result.returncode == 0, result.stderr
