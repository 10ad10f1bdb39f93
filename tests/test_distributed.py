"""Training and evaluating over processes that torchrun starts, on this CPU: backend gloo, two
processes of one thread each (OMP_NUM_THREADS=1, as torchrun sets for several processes per node)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_vae.checkpoint import load_checkpoint
from pyro_vae.config import Config
from pyro_vae.distributed import stream_seed, without_nproc
from pyro_vae.errors import PyroVAEError

from conftest import pyro_vae_executable, run_cli, run_main

WORKER = Path(__file__).with_name("distributed_worker.py")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def torchrun(*arguments, timeout: int = 600) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 ARGUMENTS``, one thread per process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *map(str, arguments)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **ONE_THREAD})
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def reports(completed: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith('{"rank"')]


def final_weights(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoint.pt")["model"]


def assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


PIECES = {
    "default": {},
    "conv": {"network": "conv", "conv_channels": [8, 16]},
    "semi-supervised": {"labels": 100, "conditional": True},
    "completion": {"visible_quadrants": 2, "baseline_epochs": 1, "epochs": 2},
    "iwae-vamp": {"objective": "iwae", "particles": 3, "prior": "vamp", "pseudo_inputs": 20},
    "iaf-two-groups": {"posterior": "iaf", "stochastic_layers": 2, "elbo": "trace"},
    "deep-with-practice": {"stochastic_layers": 3, "prior": "vamp", "pseudo_inputs": 20, "free_bits": 0.1,
                           "ema": 0.99, "grad_clip": 5000.0, "lr_schedule": "cosine", "optimizer": "adamax"},
    "conditional-classic-svi": {"conditional": True, "fast": False},
}


@pytest.mark.slow
def test_every_piece_trains_on_two_processes_that_end_with_the_same_weights_and_rank_0_alone_writes(tmp_path):
    """Each composition, one epoch on 1,000 images over two processes: both hold bit-identical weights,
    rank 0 alone opened files for writing (a Python audit hook in each process), and the run records
    its world size and both processes' random streams."""
    base = {"subset": 1000, "epochs": 1, "batch_size": 100, "device": "cpu", "z_dim": 8, "hidden_dims": [64]}
    configs = [json.dumps({**base, **changes}) for changes in PIECES.values()]
    found = reports(torchrun(WORKER, "train", tmp_path, *configs))
    for number, name in enumerate(PIECES):
        by_rank = {report["rank"]: report for report in found if report["config"] == number}
        assert set(by_rank) == {0, 1}, name
        assert by_rank[0]["fingerprint"] == by_rank[1]["fingerprint"], name
        assert by_rank[1]["written"] == [], name
        assert any(path.endswith("checkpoint.pt.tmp") for path in by_rank[0]["written"]), name
        assert by_rank[0]["world_size"] == 2
        run_dir = tmp_path / str(number)
        assert json.loads((run_dir / "config.json").read_text())["world_size"] == 2
        state = load_checkpoint(run_dir / "checkpoint.pt")
        assert len(state["rng_ranks"]) == 2 and not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert len(records) == state["epoch"] and records[-1]["processes"] == 2, name


@pytest.mark.slow
def test_one_step_on_two_halves_equals_one_step_on_the_whole_batch(tmp_path):
    """With the processes' draws taken from the one stream a single process would use, a step on two
    processes, each with half of 128 images, leaves the weights and Adam's first moment (0.1 times the
    gradient) where one process's step on all 128 leaves them: the all-reduce sums what one process
    would (an average of the halves would give half the first moment)."""
    torchrun(WORKER, "step", tmp_path)
    single = tmp_path / "single"
    single.mkdir()
    completed = subprocess.run([sys.executable, str(WORKER), "step", str(single)], capture_output=True, text=True,
                               env={**os.environ, **ONE_THREAD}, timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    one = torch.load(single / "step-0.pt")
    for rank in (0, 1):
        two = torch.load(tmp_path / f"step-{rank}.pt")
        for moment, expected in zip(two["exp_avg"], one["exp_avg"], strict=True):
            torch.testing.assert_close(moment, expected, rtol=1e-4, atol=1e-6)
        for name, weight in two["weights"].items():
            torch.testing.assert_close(weight, one["weights"][name], rtol=1e-5, atol=1e-5)  # lr * g / (|g| + eps): a g near eps moves by up to lr


@pytest.mark.slow
def test_two_processes_reach_the_test_elbo_of_one(tmp_path):
    """Two epochs of a VAE (one hidden layer of 128) on all of MNIST, started by torchrun on the
    console script as README says, against one process with the same global batch: test ELBOs within 1 nat."""
    common = ["train", "--epochs", "2", "--hidden-dims", "128", "--device", "cpu", "--quiet", "--no-plot"]
    torchrun(pyro_vae_executable(), *common, "--out", tmp_path / "two")
    code, _, stderr = run_main(*common, "--out", tmp_path / "one")
    assert code == 0, stderr
    last = [json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[-1])["test_elbo"] for run in ("one", "two")]
    assert abs(last[0] - last[1]) < 1.0, last


def workers_of(launcher: subprocess.Popen) -> dict[int, int]:
    """{rank: pid} of the processes torch.distributed.run started for ``launcher``."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    ranks = {}
    for pid in map(int, children):
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = [entry.split(b"=", 1)[1] for entry in environment if entry.startswith(b"RANK=")]
        if rank:
            ranks[int(rank[0])] = pid
    return ranks


@pytest.mark.slow
def test_a_rank_killed_mid_epoch_leaves_the_last_checkpoint_and_the_run_resumes_bit_for_bit(tmp_path):
    """`train --nproc 2`: SIGKILL to rank 1 as soon as the first checkpoint is written (so during
    epoch 2): the command fails with one line, the checkpoint on disk is the last complete epoch, and
    `--resume` on two processes ends with the weights of an uninterrupted two-process run."""
    flags = ["--subset", "5000", "--epochs", "3", "--device", "cpu", "--quiet", "--no-plot", "--nproc", "2"]
    killed = tmp_path / "killed"
    launcher = subprocess.Popen([pyro_vae_executable(), "train", *flags, "--out", str(killed)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (killed / "checkpoint.pt").exists() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(workers_of(launcher)[1], signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=300)
    assert launcher.returncode != 0
    assert stderr.strip().splitlines()[-1].startswith("pyro-vae: error: process"), stderr[-2000:]
    state = load_checkpoint(killed / "checkpoint.pt")
    assert 1 <= state["epoch"] < 3
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == state["epoch"]

    resumed = run_cli("train", "--resume", killed, "--nproc", "2", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    uninterrupted = run_cli("train", *flags, "--out", tmp_path / "uninterrupted", timeout=600)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    assert_same_weights(final_weights(killed), final_weights(tmp_path / "uninterrupted"))
    metrics = [[{key: value for key, value in json.loads(line).items() if key != "seconds"}
                for line in (run / "metrics.jsonl").read_text().splitlines()]
               for run in (killed, tmp_path / "uninterrupted")]  # fmt: skip
    assert metrics[0] == metrics[1]


@pytest.mark.slow
def test_sharded_evaluate_equals_one_process(tmp_path):
    """IWAE k=50 on 1,000 test images: `evaluate --nproc 2` gives the one-process numbers; and a
    two-process run resumed on one process goes on, and says that its random streams start afresh."""
    run_dir = tmp_path / "run"
    trained = run_cli("train", "--subset", "1000", "--epochs", "1", "--device", "cpu", "--quiet", "--no-plot",
                      "--nproc", "2", "--out", run_dir)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    flags = ["evaluate", run_dir, "--k", "50", "--no-fid", "--json", "--device", "cpu"]
    code, stdout, stderr = run_main(*flags)
    assert code == 0, stderr
    one = json.loads(stdout.strip().splitlines()[-1])
    sharded = run_cli(*flags, "--nproc", "2")
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    lines = [line for line in sharded.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 alone prints
    two = json.loads(lines[0])
    assert one["n_images"] == two["n_images"] == 1000
    for figure in ("log_likelihood", "elbo", "reconstruction", "kl", "bits_per_dim"):
        assert two[figure] == pytest.approx(one[figure], rel=1e-9, abs=1e-9), figure

    code, stdout, stderr = run_main("train", "--resume", run_dir, "--epochs", "2", "--quiet", "--no-plot")
    assert code == 0, stderr
    assert "random streams" in stdout and "start afresh" in stdout
    assert json.loads((run_dir / "config.json").read_text())["world_size"] == 1
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_encode_and_score_on_two_processes_write_the_one_process_files(tmp_path, grey_mnist):
    """600 test digits from an .npy: the codes with draws, and every score (regret included), are
    the same bytes from --nproc 2 as from one process (each chunk's draws keyed by the seed and the chunk)."""
    run_dir = tmp_path / "run"
    code, _, stderr = run_main("train", "--subset", "1000", "--epochs", "1", "--hidden-dims", "64", "--z-dim", "4",
                               "--device", "cpu", "--quiet", "--no-plot", "--out", run_dir)  # fmt: skip
    assert code == 0, stderr
    digits = tmp_path / "digits.npy"
    np.save(digits, (grey_mnist.test.floats()[:600].reshape(-1, 28, 28) * 255).round().byte().cpu().numpy())
    for processes in ("1", "2"):
        for command in (["encode", "--sample", "2", "--out", tmp_path / f"codes-{processes}.npz"],
                        ["score", "--k", "5", "--scores", "nll,complexity,regret", "--out", tmp_path / f"scores-{processes}.csv"]):
            completed = run_cli(command[0], run_dir, "--dataset", digits, *command[1:], "--device", "cpu", "--nproc", processes,
                                env_extra=ONE_THREAD)  # fmt: skip
            assert completed.returncode == 0, completed.stderr[-2000:]
    assert (tmp_path / "scores-1.csv").read_text() == (tmp_path / "scores-2.csv").read_text()
    one, two = np.load(tmp_path / "codes-1.npz"), np.load(tmp_path / "codes-2.npz")
    assert one.files == two.files and all(np.array_equal(one[name], two[name]) for name in one.files)


def test_nproc_is_taken_out_of_the_command_each_process_runs():
    assert without_nproc(["train", "--nproc", "2", "--epochs", "3"]) == ["train", "--epochs", "3"]
    assert without_nproc(["evaluate", "run", "--nproc=4", "--k", "5"]) == ["evaluate", "run", "--k", "5"]


def test_streams_are_keyed_apart():
    seeds = {stream_seed(0, "rank", rank) for rank in range(64)} | {stream_seed(0, "epoch", epoch) for epoch in range(64)}
    assert len(seeds) == 128 and all(0 <= seed < 2**32 for seed in seeds)
    assert stream_seed(7, "rank", 1) == stream_seed(7, "rank", 1)


def test_a_global_batch_smaller_than_the_processes_is_refused():
    with pytest.raises(PyroVAEError, match="--batch-size 1 is the global batch"):
        Config(batch_size=1, world_size=2).validate()
    code, _, stderr = run_main("train", "--nproc", "2", "--batch-size", "1")
    assert code == 2 and stderr.startswith("pyro-vae: error: --batch-size 1 is the global batch"), stderr
