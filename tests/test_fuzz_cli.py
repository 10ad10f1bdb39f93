"""Fuzz the CLI's options with hypothesis: whatever the input, no traceback, and every failure is
one line on stderr with a non-zero exit. About a minute of examples, in-process through the same ``main`` the console
script calls; valid training inputs stop at data loading (an empty data root, downloads off)."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pyro_vae import Config, train
from pyro_vae.cli.main import main

pytestmark = pytest.mark.slow

NUMBERS = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["0", "-1", "1e309", "nan", "inf", "", " ", "0x10", "1,2", "5.5", "100000000",
                     "4294967296", "99999999999999999999", "-99999999999999999999", "100001"]),
)
WORDS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["cuda", "cuda:0", "cuda:99", "cpu", "auto", "bernoulli", "normal", "trace", "analytic", "tpu"]),
)
TRAIN_OPTIONS = {
    "--epochs": NUMBERS, "--batch-size": NUMBERS, "--lr": NUMBERS, "--seed": NUMBERS,
    "--z-dim": NUMBERS, "--hidden-dims": st.one_of(NUMBERS, WORDS), "--likelihood": WORDS,
    "--normal-scale": NUMBERS, "--elbo": WORDS, "--device": WORDS, "--activation": WORDS,
    "--label-scale": NUMBERS,
}
SAMPLE_OPTIONS = {"--digit": st.one_of(NUMBERS, WORDS), "--n": NUMBERS, "--seed": NUMBERS, "--device": WORDS}


def run_main(arguments: list[str]) -> tuple[int, str]:
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            main(arguments)
        except SystemExit as exit_:
            code = exit_.code
        else:
            code = 0
    return code, stderr.getvalue() + stdout.getvalue()


def options(strategies: dict):
    pairs = st.lists(
        st.sampled_from(sorted(strategies)).flatmap(lambda name: strategies[name].map(lambda v: (name, v))),
        max_size=5,
    )
    return pairs.map(lambda chosen: [token for pair in chosen for token in pair])


def assert_clean(code, output):
    event(f"exit status {code}")
    assert "Traceback" not in output
    assert "unexpected error" not in output, output
    if code != 0:
        assert len([line for line in output.splitlines() if line.strip()]) == 1, output


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    config = Config(epochs=1, hidden_dims=(32,), z_dim=2, conditional=True, device="cpu", data_dir=str(data_root))
    train(config, out=out, quiet=True, echo=None)
    return out


@settings(max_examples=6000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arguments=options(TRAIN_OPTIONS))
def test_train_options_never_produce_a_traceback(arguments, tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_VAE_OFFLINE", "1")
    monkeypatch.setenv("PYRO_VAE_DATA", str(tmp_path / "no-mnist-here"))
    code, output = run_main(["train", "--quiet", "--out", str(tmp_path / "run"), *arguments])
    assert code != 0  # with no data, nothing can train
    assert_clean(code, output)


# Every valid sample example loads the run's checkpoint, as the command does; 1,500 examples cover
# the few options and their spellings in a few seconds (6,000 took 32 s of the suite).
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arguments=options(SAMPLE_OPTIONS), suffix=st.sampled_from([".png", ".npy", ".jpg", ""]))
def test_sample_options_never_produce_a_traceback(arguments, suffix, tiny_run, tmp_path):
    code, output = run_main(["sample", "--run", str(tiny_run), "--out", str(tmp_path / f"x{suffix}"), *arguments])
    assert_clean(code, output)
