"""Every `pyro-vae` line of README's command-line section, run the way a user would: in order, in an
empty folder, through ``main``, the function the installed console script calls, in this process (one
torch import instead of one per line; the other end-to-end tests start the console script itself).
Shortened only where it trains or estimates
(`--epochs 1`, `--k 5`, `--subset 2000` images of each split; a completion model one baseline epoch
and one of the CVAE) and, on a machine without CUDA, `--device cuda` becomes `--device cpu`.
So the README cannot drift from the CLI."""

from __future__ import annotations

import re
import shlex

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, run_cli, run_main

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## The command line", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.startswith("pyro-vae")]


def shortened(command: str) -> list[str]:
    arguments = shlex.split(command)[1:]
    arguments = " ".join(arguments)
    arguments = re.sub(r"--epochs \d+", "--epochs 1", arguments)
    arguments = re.sub(r"--k \d+", "--k 5", arguments)
    if "--visible-quadrants" in arguments:  # one baseline epoch, then one of the CVAE
        arguments = re.sub(r"--baseline-epochs \d+", "--baseline-epochs 1", arguments.replace("--epochs 1", "--epochs 2"))
    if arguments.split()[:1] == ["train"] and "--epochs" not in arguments:
        arguments += " --epochs 1"
    if arguments.split()[:1] == ["compare"] and "--k" not in arguments:
        arguments += " --k 5"
    if arguments.split()[:1] in (["train"], ["compare"]) and "--resume" not in arguments:
        arguments += " --subset 2000"
    if not torch.cuda.is_available():
        arguments = re.sub(r"--device cuda(:\d+)?", "--device cpu", arguments)
    return arguments.split()


def test_readme_holds_the_missions_commands_as_typed():
    commands = readme_commands()
    assert "pyro-vae train --conditional --device cuda" in commands
    assert "pyro-vae sample --digit 5" in commands
    assert len(commands) >= 10


def write_my_images(folder, data_root, count: int = 300):
    """The README's ./my-images: MNIST's first digits as PNG files, one subfolder per class."""
    import torchvision

    digits = torchvision.datasets.MNIST(str(data_root), train=True)
    for index in range(count):
        place = folder / str(int(digits.targets[index]))
        place.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.data[index].numpy()).save(place / f"{index:05d}.png")


def test_every_readme_command_runs_as_typed(tmp_path, data_root, monkeypatch):
    env = {"PYRO_VAE_DATA": str(data_root), "PYRO_VAE_RUNS": str(tmp_path / "runs"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "MLFLOW_TRACKING_URI": ""}  # fmt: skip
    write_my_images(tmp_path / "my-images", data_root)
    monkeypatch.chdir(tmp_path)
    for command in readme_commands():
        arguments = shortened(command)
        code, stdout, stderr = run_main(*arguments, env_extra=env)
        assert code == 0, f"{command}\n{stderr}"
        assert "Traceback" not in stderr, command
        if arguments[0] == "sample" and "--out" not in arguments:
            written = tmp_path / stdout.strip().rsplit(" to ", 1)[1]
            assert written.name == "samples-digit5.png" and written.parent == tmp_path, stdout
            with Image.open(written) as image:
                assert image.size == (8 * 28 + 9 * 2,) * 2 and np.asarray(image).std() > 10
        if arguments[0] == "--version":
            assert re.fullmatch(r"pyro-vae, version \d+\.\d+\.\d+", stdout.strip()), stdout
    assert (tmp_path / "x.npy").is_file() and (tmp_path / "three.png").is_file()
    assert (tmp_path / "completion.png").is_file()
    assert np.load(tmp_path / "codes.npz")["z_loc"].shape == (10000, 32) and (tmp_path / "recon.png").is_file()
    assert (tmp_path / "scores.csv").read_text().count("\n") == 10001
    with Image.open(tmp_path / "mine.png") as image:  # 64 threes of 32x32, 8 to a row
        assert image.size == (8 * 32 + 9 * 2,) * 2
    assert (tmp_path / "results" / "compare" / "compare.md").is_file()
    assert (tmp_path / "mlruns").is_dir()  # --track mlflow, MLflow's file store in the working folder


def test_sample_never_overwrites_its_default_output(tmp_path, data_root):
    """A second `sample --digit 5` numbers its file; a plain VAE's default name is samples.png."""
    from pyro_vae import Config, train

    train(Config(epochs=1, z_dim=4, hidden_dims=(32,), conditional=True, subset=2000, device="cpu", data_dir=str(data_root)),
          out=tmp_path / "runs" / "cvae", quiet=True, echo=None)  # fmt: skip
    env = {"PYRO_VAE_RUNS": str(tmp_path / "runs")}
    (tmp_path / "samples-digit5.png").write_bytes(b"mine")
    result = run_cli("sample", "--digit", "5", env_extra=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(" to samples-digit5-2.png")
    assert (tmp_path / "samples-digit5.png").read_bytes() == b"mine"
    result = run_cli("sample", "--n", "10", env_extra=env, cwd=tmp_path)
    assert result.stdout.strip().endswith(" to samples.png") and (tmp_path / "samples.png").is_file()


def test_help_shows_the_choices_and_a_bad_choice_lists_them():
    result = run_cli("train", "--help")
    assert "[bernoulli|normal|continuous-bernoulli|discretized-logistic]" in result.stdout and "[mlp|conv]" in result.stdout
    assert "[analytic|trace]" in result.stdout and "[1|3]" in result.stdout
    assert "cifar10" in " ".join(result.stdout.split()) and "a folder of images" in " ".join(result.stdout.split())
    assert "[auto|cpu|cuda|cuda:N]" in result.stdout
    bad = run_cli("train", "--likelihood", "bogus")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "'bernoulli', 'normal', 'continuous-bernoulli'" in bad.stderr
