"""Reliability: exact resume after SIGKILL, Ctrl-C, a failed checkpoint write, a diverging loss.

Real subprocesses of the installed entry point, real signals, real MNIST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from conftest import pyro_vae_executable, run_cli
from pyro_vae import Config, PyroVAEError, build_model, train
from pyro_vae import checkpoint as checkpoint_module
from pyro_vae.checkpoint import load_checkpoint
from pyro_vae.config import replace
from pyro_vae.training import resume

pytestmark = pytest.mark.slow

SMALL = ["--hidden-dims", "64", "--z-dim", "4", "--device", "cpu", "--quiet"]
EPOCHS = 3


def tensors_equal(left, right) -> bool:
    """Bit-for-bit equality of nested checkpoint structures."""
    if isinstance(left, torch.Tensor):
        return isinstance(right, torch.Tensor) and left.dtype == right.dtype and torch.equal(left, right)
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(tensors_equal(left[k], right[k]) for k in left)
    if isinstance(left, (list, tuple)):
        return len(left) == len(right) and all(tensors_equal(a, b) for a, b in zip(left, right))
    return left == right


def without_seconds(metrics):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in metrics]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("reference") / "run"
    result = run_cli("train", "--epochs", EPOCHS, "--out", out, *SMALL, env_extra={"PYRO_VAE_DATA": str(data_root)})
    assert result.returncode == 0, result.stderr
    return load_checkpoint(out / "checkpoint.pt")


def start_training(out, data_root):
    env = {**os.environ, "PYRO_VAE_DATA": str(data_root)}
    command = [pyro_vae_executable(), "train", "--epochs", str(EPOCHS), "--out", str(out), *SMALL]
    # A shell without job control starts background jobs with SIGINT ignored, and a child inherits
    # that; Ctrl-C at a terminal reaches a process whose SIGINT is at its default, so set that.
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip


def wait_until_mid_epoch_two(process, out, timeout=120):
    """Block until epoch 1's checkpoint and metrics are written, then a little more: a third of
    epoch 1's time, at most 0.4 s (a first epoch can be much slower than the next ones, whose
    469 steps take longer than that)."""
    deadline = time.monotonic() + timeout
    metrics = out / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "epoch 1 never finished"
        time.sleep(0.05)
    seconds_per_epoch = json.loads(metrics.read_text().splitlines()[0])["seconds"]
    time.sleep(min(seconds_per_epoch / 3, 0.4))
    assert process.poll() is None, "training ended before it could be interrupted"


def assert_same_run(resumed, reference):
    assert resumed["epoch"] == reference["epoch"] == EPOCHS
    assert resumed["step"] == reference["step"]
    assert tensors_equal(resumed["model"], reference["model"])
    assert tensors_equal(resumed["optimizer"], reference["optimizer"])
    assert tensors_equal(resumed["rng"], reference["rng"])
    assert without_seconds(resumed["metrics"]) == without_seconds(reference["metrics"])


def test_sigkill_mid_epoch_then_resume_is_bit_identical(uninterrupted, tmp_path, data_root):
    out = tmp_path / "killed"
    process = start_training(out, data_root)
    wait_until_mid_epoch_two(process, out)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    result = run_cli("train", "--resume", out, env_extra={"PYRO_VAE_DATA": str(data_root)})
    assert result.returncode == 0, result.stderr
    assert_same_run(load_checkpoint(out / "checkpoint.pt"), uninterrupted)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, EPOCHS + 1))


def test_ctrl_c_keeps_the_checkpoint_prints_the_resume_command_and_exits_130(uninterrupted, tmp_path, data_root):
    out = tmp_path / "interrupted"
    process = start_training(out, data_root)
    wait_until_mid_epoch_two(process, out)
    interrupted_at = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - interrupted_at < 5, "Ctrl-C was not prompt"
    assert process.returncode == 130, stderr
    assert f"pyro-vae train --resume {out}" in stderr and "Traceback" not in stderr
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    result = run_cli("train", "--resume", out, env_extra={"PYRO_VAE_DATA": str(data_root)})
    assert result.returncode == 0, result.stderr
    assert_same_run(load_checkpoint(out / "checkpoint.pt"), uninterrupted)


def test_resume_with_more_epochs_raises_the_total(tmp_path, data_root):
    config = Config(epochs=1, hidden_dims=(64,), z_dim=4, subset=5000, device="cpu", data_dir=str(data_root))
    run = train(config, out=tmp_path / "run", quiet=True, echo=None)
    resumed = resume(run.path, epochs=2, quiet=True, echo=None)
    assert [record["epoch"] for record in resumed.metrics] == [1, 2]
    assert json.loads((run.path / "config.json").read_text())["epochs"] == 2
    with pytest.raises(PyroVAEError, match="fewer than"):
        resume(run.path, epochs=1, quiet=True, echo=None)


def test_a_write_that_fails_part_way_leaves_the_previous_checkpoint_whole(tmp_path, data_root, monkeypatch):
    config = Config(epochs=1, hidden_dims=(64,), z_dim=4, subset=5000, device="cpu", data_dir=str(data_root))
    run = train(config, out=tmp_path / "run", quiet=True, echo=None)
    path = run.path / "checkpoint.pt"
    before = path.read_bytes()
    real_save = torch.save

    def disk_fills_up(state, handle):
        real_save(state, handle)
        handle.truncate(len(before) // 2)  # half the bytes made it to disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", disk_fills_up)
    with pytest.raises(PyroVAEError, match="still holds epoch 1"):
        resume(run.path, epochs=2, quiet=True, echo=None)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert not list(run.path.glob("*.tmp"))


def test_a_diverging_loss_names_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path, data_root):
    config = Config(epochs=3, hidden_dims=(64,), z_dim=4, device="cpu", data_dir=str(data_root))

    def diverge_after_first_epoch(record, vae, run_dir):
        if record["epoch"] == 1:
            with torch.no_grad():
                vae.decoder.net.layers[-1].weight.fill_(float("nan"))

    with pytest.raises(PyroVAEError) as error:
        train(config, out=tmp_path / "run", quiet=True, echo=None, on_epoch=diverge_after_first_epoch)
    message = str(error.value)
    assert "epoch 2, step 1" in message and "checkpoint of epoch 1" in message and "--lr" in message
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in state["model"].values())


def test_init_from_starts_from_the_other_runs_weights(tmp_path, data_root):
    """Fine-tuning: a run started with init_from has the other run's weights before its first
    step (a learning rate of 1e-12 leaves them where they were) and records where they came from."""
    config = Config(epochs=1, hidden_dims=(64,), z_dim=4, subset=5000, device="cpu", data_dir=str(data_root))
    first = train(config, out=tmp_path / "first", quiet=True, echo=None)
    tuned_config = replace(config, learning_rate=1e-12, init_from=str(first.path), seed=1)
    tuned = train(tuned_config, out=tmp_path / "tuned", quiet=True, echo=None)
    for name, value in first.vae.state_dict().items():
        assert torch.allclose(tuned.vae.state_dict()[name], value, atol=1e-6), name
    assert abs(tuned.metrics[0]["test_elbo"] - first.metrics[0]["test_elbo"]) < 1.0
    assert json.loads((tuned.path / "config.json").read_text())["init_from"] == str(first.path)


def test_classic_svi_trains_resumes_exactly_and_matches_the_fast_step(tmp_path, data_root):
    """`--no-fast` (pyro.infer.SVI with pyro.optim.Adam) is the path results/default-vae resumes
    through: it must train, resume bit for bit, and take the fast step's updates up to float noise."""
    classic = Config(epochs=2, hidden_dims=(64,), z_dim=4, subset=10000, device="cpu", fast=False, data_dir=str(data_root))
    reference = train(classic, out=tmp_path / "classic", quiet=True, echo=None)
    train(replace(classic, epochs=1), out=tmp_path / "halted", quiet=True, echo=None)
    resume(tmp_path / "halted", epochs=2, quiet=True, echo=None)
    uninterrupted = load_checkpoint(reference.path / "checkpoint.pt")
    resumed = load_checkpoint(tmp_path / "halted" / "checkpoint.pt")
    for key in ("model", "optimizer", "rng", "step"):
        assert tensors_equal(resumed[key], uninterrupted[key]), key
    assert without_seconds(resumed["metrics"]) == without_seconds(uninterrupted["metrics"])
    fast = train(replace(classic, fast=True), out=tmp_path / "fast", quiet=True, echo=None)
    classic_elbo, fast_elbo = reference.metrics[-1]["test_elbo"], fast.metrics[-1]["test_elbo"]
    assert abs(classic_elbo - fast_elbo) < 0.05, (classic_elbo, fast_elbo)


@pytest.mark.parametrize("task", ["semi-supervised", "completion"])
def test_classic_svi_serves_the_semi_supervised_and_completion_models(task, tmp_path, data_root):
    """`pyro.infer.SVI` itself (`--no-fast`) trains M2 (a labeled and an unlabeled batch a step) and the
    completion CVAE (the baseline's epochs first), taking the fast step's updates up to float noise."""
    common = dict(hidden_dims=(64,), z_dim=4, subset=4000, device="cpu", data_dir=str(data_root))
    extra = {"semi-supervised": dict(labels=100, epochs=1),
             "completion": dict(visible_quadrants=2, baseline_epochs=1, epochs=2)}[task]  # fmt: skip
    classic = train(Config(**common, **extra, fast=False), out=tmp_path / "classic", quiet=True, echo=None)
    fast = train(Config(**common, **extra), out=tmp_path / "fast", quiet=True, echo=None)
    assert classic.config.fast is False and len(classic.metrics) == extra["epochs"]
    for key in ("train_elbo", "test_elbo", "test_accuracy"):
        if key in fast.metrics[-1]:
            assert classic.metrics[-1][key] == pytest.approx(fast.metrics[-1][key], abs=0.05), key
    if task == "completion":  # the baseline trained in the first epoch, under SVI as in the fast step
        untrained = build_model(classic.config).task.baseline.layers[0].weight
        assert not torch.allclose(classic.vae.task.baseline.layers[0].weight, untrained)


def test_init_from_adds_a_new_piece_to_a_trained_vae(tmp_path, data_root):
    """A VampPrior or an IAF fine-tuned from a plain VAE: encoder and decoder start from its
    weights, the pseudo-inputs and flows fresh; a different network shape is still refused."""
    config = Config(epochs=1, hidden_dims=(64,), z_dim=4, subset=5000, device="cpu", data_dir=str(data_root))
    first = train(config, out=tmp_path / "first", quiet=True, echo=None)
    vamp = replace(config, prior="vamp", pseudo_inputs=10, learning_rate=1e-12, init_from=str(first.path))
    tuned = train(vamp, out=tmp_path / "vamp", quiet=True, echo=None)
    for name, value in first.vae.state_dict().items():
        assert torch.allclose(tuned.vae.state_dict()[name], value, atol=1e-6), name
    assert tuned.vae.latent_prior.pseudo_inputs.shape == (10, 784)
    # An IAF's encoder outputs a context after the mean and log-scale: those rows come from the
    # trained encoder, the context's start fresh.
    iaf = train(replace(vamp, prior="normal", posterior="iaf"), out=tmp_path / "iaf", quiet=True, echo=None)
    trained, grown = first.vae.encoder.net.layers[-1], iaf.vae.encoder.net.layers[-1]
    assert grown.weight.shape[0] > trained.weight.shape[0] == 8
    assert torch.allclose(grown.weight[:8], trained.weight, atol=1e-6)
    assert torch.allclose(grown.bias[:8], trained.bias, atol=1e-6)
    assert torch.allclose(iaf.vae.decoder.net.layers[0].weight, first.vae.decoder.net.layers[0].weight, atol=1e-6)
    with pytest.raises(PyroVAEError, match="does not match"):
        train(replace(config, hidden_dims=(32,), init_from=str(first.path)), out=tmp_path / "wide", quiet=True, echo=None)
