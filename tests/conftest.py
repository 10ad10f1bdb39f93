"""Shared fixtures. MNIST comes from $PYRO_VAE_DATA (CI points it at ../shared/data); a test that
needs it and cannot find it fails, it never skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def mnist_root() -> Path:
    root = Path(os.environ.get("PYRO_VAE_DATA") or REPO.parent / "shared" / "data").resolve()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.fail(f"MNIST not found under {root}/MNIST/raw: set PYRO_VAE_DATA to a folder holding it")
    return root


@pytest.fixture(scope="session")
def data_root() -> Path:
    return mnist_root()


@pytest.fixture(scope="session")
def grey_mnist(data_root):
    from pyro_vae.data import load_mnist

    return load_mnist(str(data_root), torch.device("cpu"), binarize=False)


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    """A per-session cache folder (XDG_CACHE_HOME): an MNIST evaluation must leave it empty, since the
    MNIST judge ships with the package."""
    return tmp_path_factory.mktemp("cache")


# Short conditional runs train on the first 20,000 images (`--subset 20000`) to save time; any split
# of MNIST is judged by the shipped classifier.
CLASSIFIER_SUBSET = 20000


@pytest.fixture(scope="session")
def digit_classifier(grey_mnist):
    """The shipped MNIST judge (``load_or_train_classifier``), judged on all 10,000 test images."""
    from pyro_vae import Config
    from pyro_vae.classifier import SHIPPED_JUDGES, accuracy, load_or_train_classifier

    classifier = load_or_train_classifier(Config(subset=CLASSIFIER_SUBSET), torch.device("cpu"))
    assert classifier.sha256 == SHIPPED_JUDGES["mnist"][1]
    test_accuracy = accuracy(classifier, grey_mnist.test)
    assert test_accuracy > 0.98, f"the judging classifier itself is too weak: {test_accuracy:.3f}"
    return classifier


@pytest.fixture(autouse=True)
def fresh_pyro():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def pyro_vae_executable() -> str:
    """The installed console script, next to this interpreter (the venv's bin/)."""
    candidate = Path(sys.executable).parent / "pyro-vae"
    found = str(candidate) if candidate.exists() else shutil.which("pyro-vae")
    if not found:
        pytest.fail("the pyro-vae console script is not installed; pip install -e '.[test]'")
    return found


def run_main(*arguments, env_extra: dict | None = None) -> tuple[int, str, str]:
    """The CLI in this process, through the same ``main`` the console script calls: returns
    (exit status, stdout, stderr). One torch import for the whole suite instead of one per case."""
    import contextlib
    import io

    from pyro_vae.cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    saved = {name: os.environ.get(name) for name in (env_extra or {})}
    os.environ.update({name: str(value) for name, value in (env_extra or {}).items()})
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main([str(argument) for argument in arguments])
                code = 0
            except SystemExit as exit_:
                code = exit_.code
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return code, stdout.getvalue(), stderr.getvalue()


def run_here(*arguments, env_extra: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``run_main`` with ``run_cli``'s answer (returncode, stdout, stderr), in ``cwd`` if given: for
    tests that run many commands, where a process each would spend most of its time importing torch."""
    previous = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        code, stdout, stderr = run_main(*arguments, env_extra=env_extra)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess([str(argument) for argument in arguments], code, stdout, stderr)


def run_cli(*args: str, env_extra: dict | None = None, cwd: Path | None = None, timeout: int = 600):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [pyro_vae_executable(), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
