"""Bad input through the CLI's ``main`` (in-process, as the console script calls it; the README test
and the end-to-end tests go through the installed script): a one-line message, a non-zero exit, no
traceback, and a finished checkpoint left as it was."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
import torch

from conftest import run_main
from pyro_vae import Config, train
from pyro_vae.checkpoint import load_checkpoint, save_checkpoint

NO_SUCH_GPU = f"cuda:{torch.cuda.device_count() + 3}"


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, data_root):
    """A small, real, finished unconditional run."""
    out = tmp_path_factory.mktemp("runs") / "vae"
    config = Config(epochs=2, subset=5000, z_dim=4, hidden_dims=(64,), device="cpu", data_dir=str(data_root))
    train(config, out=out, quiet=True, echo=None)
    return out


@pytest.fixture
def corrupt_run(tmp_path, vae_run):
    run = tmp_path / "corrupt"
    run.mkdir()
    (run / "config.json").write_text((vae_run / "config.json").read_text())
    (run / "checkpoint.pt").write_bytes((vae_run / "checkpoint.pt").read_bytes()[:1000])
    return run


def broken_mnist_root(base, data_root, damage):
    """A copy of the MNIST root (links to the real files) whose training images are damaged."""
    raw = base / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (data_root / "MNIST" / "raw").glob("*-ubyte"):
        (raw / source.name).symlink_to(source)
    images = raw / "train-images-idx3-ubyte"
    content = images.read_bytes()
    images.unlink()
    images.write_bytes(damage(content))
    return base


@pytest.fixture(scope="module")
def truncated_root(tmp_path_factory, data_root):
    return broken_mnist_root(tmp_path_factory.mktemp("truncated"), data_root, lambda b: b[: len(b) // 3])


@pytest.fixture(scope="module")
def bad_magic_root(tmp_path_factory, data_root):
    return broken_mnist_root(tmp_path_factory.mktemp("magic"), data_root, lambda b: b"\x00\x00\x99\x99" + b[4:])


@pytest.fixture(scope="module")
def mismatched_run(tmp_path_factory, vae_run):
    """A real checkpoint whose configuration claims another latent size than its weights have."""
    run = tmp_path_factory.mktemp("mismatched") / "run"
    run.mkdir()
    state = load_checkpoint(vae_run / "checkpoint.pt")
    state["config"] = {**state["config"], "z_dim": 7}
    save_checkpoint(run / "checkpoint.pt", state)
    return run


@pytest.fixture(scope="module")
def random_bytes_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("random") / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(bytes(random.Random(0).getrandbits(8) for _ in range(4096)))
    return run


@pytest.fixture(scope="module")
def bad_sources(tmp_path_factory):
    """Sources of images that cannot be used, each in its own folder or file."""
    from PIL import Image

    base = tmp_path_factory.mktemp("sources")
    digit = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    (base / "empty").mkdir()
    (base / "no-images").mkdir()
    (base / "no-images" / "notes.txt").write_text("not a picture")
    for name in ("corrupt", "truncated", "mixed"):
        (base / name).mkdir()
        Image.fromarray(digit).save(base / name / "a.png")
    (base / "corrupt" / "b.png").write_bytes(bytes(range(256)) * 4)
    noise = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)  # the same size, cut short
    Image.fromarray(noise).save(base / "truncated" / "b.png")
    whole = (base / "truncated" / "b.png").read_bytes()
    (base / "truncated" / "b.png").write_bytes(whole[: len(whole) // 2])
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(base / "mixed" / "b.png")
    for name in ("a", "b"):
        (base / "tree" / name).mkdir(parents=True)
    Image.fromarray(digit).save(base / "tree" / "a" / "1.png")
    np.save(base / "rank.npy", np.zeros((5, 28), np.uint8))
    np.save(base / "dtype.npy", np.zeros((5, 8, 8), np.int64))
    np.save(base / "range.npy", np.full((5, 8, 8), 2.0, np.float32))
    images = np.zeros((6, 8, 8), np.uint8)
    np.savez(base / "labels.npz", images=images, labels=np.zeros(4, np.int64))
    np.savez(base / "unlabelled.npz", images=images)
    np.savez(base / "empty-class.npz", images=images, labels=np.array([0, 0, 0, 2, 2, 2]), class_names=np.array(["a", "b", "c"]))
    np.savez(base / "test-shape.npz", images=images, test_images=np.zeros((3, 9, 8), np.uint8))
    np.savez(base / "test-labels.npz", images=images, labels=np.arange(6) % 2, test_images=images[:2])
    labelled = np.stack([digit, digit.T] * 20)
    np.savez(base / "two-classes.npz", images=labelled, labels=np.arange(40) % 2, class_names=np.array(["rows", "columns"]))
    return base


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory, bad_sources):
    """A finished conditional run on a small labelled .npz (classes 'rows' and 'columns')."""
    out = tmp_path_factory.mktemp("labelled") / "run"
    config = Config(dataset=str(bad_sources / "two-classes.npz"), conditional=True, epochs=1, z_dim=2, hidden_dims=(8,),
                    device="cpu")  # fmt: skip
    train(config, out=out, quiet=True, echo=None)
    return out


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


BAD_INPUTS = {
    "digit out of range": (["sample", "--run", "{vae}", "--digit", "12", "--out", "{tmp}/x.png"], "from 0 to 9, got 12"),
    "non-integer digit": (["sample", "--run", "{vae}", "--digit", "five", "--out", "{tmp}/x.png"], "digit"),
    "digit for an unconditional run": (["sample", "--run", "{vae}", "--digit", "3", "--out", "{tmp}/x.png"], "conditional"),
    "zero samples": (["sample", "--run", "{vae}", "--n", "0", "--out", "{tmp}/x.png"], "--n"),
    "unknown output extension": (["sample", "--run", "{vae}", "--out", "{tmp}/x.jpg"], ".png"),
    "unwritable output folder": (["sample", "--run", "{vae}", "--out", "{tmp}/no/such/x.png"], "does not exist"),
    "missing run directory": (["sample", "--run", "{tmp}/nowhere", "--out", "{tmp}/x.png"], "does not exist"),
    "negative digit": (["sample", "--run", "{vae}", "--digit", "-1", "--out", "{tmp}/x.png"], "x>=0"),
    "truncated checkpoint": (["sample", "--run", "{corrupt}", "--out", "{tmp}/x.png"], "checkpoint"),
    "random-bytes checkpoint": (["sample", "--run", "{random_bytes}", "--out", "{tmp}/x.png"], "checkpoint"),
    "checkpoint that does not match its config": (["sample", "--run", "{mismatched}", "--out", "{tmp}/x.png"], "does not match"),
    "resume a missing run": (["train", "--resume", "{tmp}/nowhere"], "does not exist"),
    "resume with a changed hyper-parameter": (["train", "--resume", "{vae}", "--z-dim", "8"], "--z-dim"),
    "resume with fewer epochs than done": (["train", "--resume", "{vae}", "--epochs", "1"], "fewer than the 2 epochs"),
    "no runs at all": (["sample", "--out", "{tmp}/x.png"], "no run"),
    "cuda without a GPU": (["train", "--device", "cuda" if not torch.cuda.is_available() else NO_SUCH_GPU, "--out", "{tmp}/r"], "cuda"),
    "GPU index past the last": (["train", "--device", NO_SUCH_GPU, "--out", "{tmp}/r"], "cuda"),
    "unknown device": (["train", "--device", "tpu", "--out", "{tmp}/r"], "device"),
    "zero epochs": (["train", "--epochs", "0", "--out", "{tmp}/r"], "epochs"),
    "negative batch size": (["train", "--batch-size", "-5", "--out", "{tmp}/r"], "--batch-size"),
    "negative learning rate": (["train", "--lr", "-0.1", "--out", "{tmp}/r"], "--lr"),
    "zero latent dimensions": (["train", "--z-dim", "0", "--out", "{tmp}/r"], "--z-dim"),
    "zero hidden width": (["train", "--hidden-dims", "400,0", "--out", "{tmp}/r"], "--hidden-dims"),
    "hidden widths not numbers": (["train", "--hidden-dims", "wide", "--out", "{tmp}/r"], "hidden-dims"),
    "unknown likelihood": (["train", "--likelihood", "poisson", "--out", "{tmp}/r"], "'continuous-bernoulli'"),
    "unknown ELBO": (["train", "--elbo", "renyi", "--out", "{tmp}/r"], "'analytic', 'trace'"),
    "non-numeric epochs": (["train", "--epochs", "many", "--out", "{tmp}/r"], "epochs"),
    "truncated MNIST file": (["train", "--data-dir", "{truncated}", "--out", "{tmp}/r", "--device", "cpu"], "could not read MNIST"),
    "MNIST file with a wrong magic number": (["train", "--data-dir", "{bad_magic}", "--out", "{tmp}/r", "--device", "cpu"], "could not read MNIST"),
    "missing MNIST": (["train", "--data-dir", "{tmp}/empty", "--out", "{tmp}/r", "--device", "cpu"], "MNIST not found"),
    "train over a finished run": (["train", "--out", "{vae}", "--device", "cpu"], "already holds"),
    "unknown option": (["train", "--epoch", "3"], "--epoch"),
    "evaluate with k=0": (["evaluate", "{vae}", "--k", "0"], "--k"),
    "evaluate a missing run": (["evaluate", "{tmp}/nowhere"], "does not exist"),
    "a network too large to hold": (["train", "--hidden-dims", "100000,100000", "--out", "{tmp}/r"], "parameters"),
    "unknown dataset": (["train", "--dataset", "{tmp}/no/such/folder", "--out", "{tmp}/r"], "no such folder"),
    "fine-tune from a missing run": (["train", "--init-from", "{tmp}/nowhere", "--out", "{tmp}/r"], "no checkpoint"),
    "fine-tune a different network": (["train", "--init-from", "{vae}", "--z-dim", "9", "--hidden-dims", "64",
                                       "--device", "cpu", "--out", "{tmp}/r"], "does not match"),  # fmt: skip
    "plot a missing run": (["plot", "{tmp}/nowhere"], "does not exist"),
    "zero particles": (["train", "--objective", "iwae", "--particles", "0", "--out", "{tmp}/r"], "--particles"),
    "conditional VampPrior with fewer pseudo-inputs than classes": (["train", "--prior", "vamp", "--conditional",
                                                                      "--pseudo-inputs", "5", "--out", "{tmp}/r"],
                                                                     "each of the 10 classes"),  # fmt: skip
    "more latent groups than allowed": (["train", "--stochastic-layers", "33", "--out", "{tmp}/r"], "--stochastic-layers"),
    "group dimensions that do not match the groups": (["train", "--stochastic-layers", "3", "--upper-z-dims", "8",
                                                       "--out", "{tmp}/r"], "2 positive integers"),  # fmt: skip
    "a weight average with no decay": (["train", "--ema", "1", "--out", "{tmp}/r"], "--ema"),
    "a negative gradient clip": (["train", "--grad-clip", "-1", "--out", "{tmp}/r"], "--grad-clip"),
    "an unknown optimizer": (["train", "--optimizer", "sgd", "--out", "{tmp}/r"], "'adam', 'adamax'"),
    "unknown posterior": (["train", "--posterior", "realnvp", "--out", "{tmp}/r"], "'gaussian', 'iaf'"),
    "negative KL warm-up": (["train", "--kl-warmup", "-1", "--out", "{tmp}/r"], "--kl-warmup"),
    "leaderboard of a missing run": (["leaderboard", "{tmp}/nowhere"], "does not exist"),
    "leaderboard of nothing": (["leaderboard"], "run_dirs"),
    "plot with no runs at all": (["plot"], "no run"),
    "fewer labels than classes": (["train", "--conditional", "--labels", "5", "--device", "cpu", "--out", "{tmp}/r"],
                                  "without a labeled image"),  # fmt: skip
    "completion with the VampPrior": (["train", "--visible-quadrants", "2", "--prior", "vamp", "--out", "{tmp}/r"],
                                      "drop --conditional and --prior vamp"),  # fmt: skip
    "more labels than training images": (["train", "--conditional", "--labels", "70000", "--out", "{tmp}/r"], "--labels"),
    "more labels of a class than it has": (["train", "--conditional", "--labels", "60000", "--device", "cpu",
                                            "--out", "{tmp}/r"], "class"),  # fmt: skip
    "no visible quadrant": (["train", "--visible-quadrants", "0", "--out", "{tmp}/r"], "--visible-quadrants"),
    "four visible quadrants": (["train", "--visible-quadrants", "4", "--out", "{tmp}/r"], "--visible-quadrants"),
    "completion with labels": (["train", "--visible-quadrants", "2", "--conditional", "--out", "{tmp}/r"],
                               "drop --conditional"),  # fmt: skip
    "completion without CVAE epochs": (["train", "--visible-quadrants", "1", "--epochs", "3", "--baseline-epochs", "3",
                                        "--out", "{tmp}/r"],
                                       "--baseline-epochs"),  # fmt: skip
    "complete a plain VAE": (["complete", "--run", "{vae}", "--device", "cpu", "--out", "{tmp}/c.png"],
                             "not an image-completion model"),  # fmt: skip
    "complete into a jpeg": (["complete", "--run", "{vae}", "--out", "{tmp}/c.jpg"], ".png"),
    "complete with no completion run": (["complete", "--device", "cpu"], "no image-completion run"),
    # your own images
    "an empty folder": (["train", "--dataset", "{src}/empty", "--out", "{tmp}/r"], "is empty"),
    "a folder with no images": (["train", "--dataset", "{src}/no-images", "--out", "{tmp}/r"], "holds no images"),
    "a corrupt image file": (["train", "--dataset", "{src}/corrupt", "--out", "{tmp}/r"], "b.png is not an image"),
    "a truncated image file": (["train", "--dataset", "{src}/truncated", "--out", "{tmp}/r"], "b.png is truncated"),
    "images of mixed sizes": (["train", "--dataset", "{src}/mixed", "--out", "{tmp}/r"], "--image-size"),
    "a class with no images": (["train", "--dataset", "{src}/tree", "--out", "{tmp}/r"], "holds no images"),
    "an array of the wrong rank": (["train", "--dataset", "{src}/rank.npy", "--out", "{tmp}/r"], "(N, H, W)"),
    "an array of the wrong dtype": (["train", "--dataset", "{src}/dtype.npy", "--out", "{tmp}/r"], "uint8"),
    "float pixels outside [0, 1]": (["train", "--dataset", "{src}/range.npy", "--out", "{tmp}/r"], "[0, 1]"),
    "labels of the wrong length": (["train", "--dataset", "{src}/labels.npz", "--out", "{tmp}/r"], "one per image"),
    "a named class without images": (["train", "--dataset", "{src}/empty-class.npz", "--out", "{tmp}/r"], "'b'"),
    "a file that is no array": (["train", "--dataset", "{src}/no-images/notes.txt", "--out", "{tmp}/r"], ".npy"),
    "conditional on a source without labels": (["train", "--dataset", "{src}/unlabelled.npz", "--conditional",
                                                "--out", "{tmp}/r"], "needs a source with classes"),  # fmt: skip
    "a test fraction of zero": (["train", "--test-fraction", "0", "--out", "{tmp}/r"], "--test-fraction"),
    "a test fraction of one": (["train", "--test-fraction", "1", "--out", "{tmp}/r"], "--test-fraction"),
    "a validation split as large as training": (["train", "--dataset", "{src}/two-classes.npz", "--validation", "36",
                                                 "--out", "{tmp}/r"], "--validation"),  # fmt: skip
    "an .npz test split of another shape": (["train", "--dataset", "{src}/test-shape.npz", "--out", "{tmp}/r"],
                                            "one shape"),  # fmt: skip
    "an .npz with labels but no test labels": (["train", "--dataset", "{src}/test-labels.npz", "--out", "{tmp}/r"],
                                               "test_labels together"),  # fmt: skip
    "conv channels that are no widths": (["train", "--network", "conv", "--conv-channels", "32,x", "--out", "{tmp}/r"],
                                         "--conv-channels"),  # fmt: skip
    "conv channels of zero": (["train", "--network", "conv", "--conv-channels", "32,0", "--out", "{tmp}/r"],
                              "positive"),  # fmt: skip
    "an unknown network": (["train", "--network", "resnet", "--out", "{tmp}/r"], "--network"),
    "a mixture without the discretized logistic": (["train", "--mixture", "3", "--out", "{tmp}/r"],
                                                   "--likelihood discretized-logistic"),  # fmt: skip
    "a mixture of zero components": (["train", "--likelihood", "discretized-logistic", "--mixture", "0",
                                      "--out", "{tmp}/r"], "--mixture"),  # fmt: skip
    "conv networks of more than the parameter limit": (["train", "--network", "conv", "--conv-channels", "4096,4096",
                                                        "--out", "{tmp}/r"], "parameters, more than"),  # fmt: skip
    "an image size of zero": (["train", "--image-size", "0", "--out", "{tmp}/r"], "--image-size"),
    "an image size that is no size": (["train", "--image-size", "big", "--out", "{tmp}/r"], "--image-size"),
    "two channels": (["train", "--channels", "2", "--out", "{tmp}/r"], "--channels"),
    "CIFAR-10 not on disk, offline": (["train", "--dataset", "cifar10", "--data-dir", "{tmp}/empty", "--out", "{tmp}/r"],
                                      "CIFAR-10 not found in"),  # fmt: skip
    "SVHN not on disk, offline": (["train", "--dataset", "svhn", "--data-dir", "{tmp}/empty", "--out", "{tmp}/r"],
                                  "test_32x32.mat"),  # fmt: skip
    "a class the run does not have": (["sample", "--run", "{labelled}", "--class", "diagonals", "--out", "{tmp}/x.png"],
                                      "no class 'diagonals'"),  # fmt: skip
    "a class index past the last": (["sample", "--run", "{labelled}", "--class", "2", "--out", "{tmp}/x.png"], "no class"),
    "--digit past the run's two classes": (["sample", "--run", "{labelled}", "--digit", "2", "--out", "{tmp}/x.png"],
                                           "from 0 to 1, got 2"),  # fmt: skip
    "--digit and --class together": (["sample", "--run", "{labelled}", "--digit", "1", "--class", "rows",
                                      "--out", "{tmp}/x.png"], "not both"),  # fmt: skip
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_a_nonzero_exit(
    name, vae_run, corrupt_run, mismatched_run, random_bytes_run, truncated_root, bad_magic_root, bad_sources,
    labelled_run, tmp_path, data_root,
):
    arguments, expected = BAD_INPUTS[name]
    places = dict(
        vae=vae_run, corrupt=corrupt_run, mismatched=mismatched_run, random_bytes=random_bytes_run,
        truncated=truncated_root, bad_magic=bad_magic_root, src=bad_sources, labelled=labelled_run,
    )
    arguments = [a.format(tmp=tmp_path, **places) for a in arguments]
    before = digest(vae_run / "checkpoint.pt")
    env = {"PYRO_VAE_RUNS": str(tmp_path / "empty-runs"), "PYRO_VAE_DATA": str(data_root), "PYRO_VAE_OFFLINE": "1",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}  # fmt: skip
    code, stdout, stderr = run_main(*arguments, env_extra=env)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code != 0, stdout
    assert "Traceback" not in stderr + stdout
    assert len(lines) == 1, stderr
    assert lines[0].startswith("pyro-vae: error:"), lines[0]
    assert expected.lower() in lines[0].lower(), lines[0]
    assert digest(vae_run / "checkpoint.pt") == before
    assert not (tmp_path / "r").exists(), "a rejected train left a run directory behind"
