"""A trained run used image by image: encode, reconstruct, score (pyro_vae/per_image.py, outliers.py,
codecs.py), through the Python API and the real entry point, on real MNIST."""

from __future__ import annotations

import csv
import io
import json
import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_vae import Config, PyroVAEError, train
from pyro_vae.codecs import codec_bits
from pyro_vae.objectives import particle_log_weights
from pyro_vae.outliers import PosteriorShift, auroc, complexity, latent_sites, likelihood_regret
from pyro_vae.per_image import encode, load_source

from conftest import run_here


def tiny(data_root, **options) -> Config:
    return Config(**{"epochs": 1, "hidden_dims": (64,), "z_dim": 4, "subset": 1000, "device": "cpu",
                     "data_dir": str(data_root), **options})  # fmt: skip


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, data_root):
    return train(tiny(data_root), out=tmp_path_factory.mktemp("per-image") / "vae", quiet=True, echo=None)


@pytest.fixture(scope="module")
def deep_cvae_run(tmp_path_factory, data_root):
    config = tiny(data_root, conditional=True, stochastic_layers=2)
    return train(config, out=tmp_path_factory.mktemp("per-image") / "deep-cvae", quiet=True, echo=None)


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, grey_mnist):
    """Twelve MNIST test digits as PNG files, named so that their order is the array's."""
    folder = tmp_path_factory.mktemp("digits")
    images = (grey_mnist.test.floats()[:12].reshape(-1, 28, 28) * 255).round().byte().cpu().numpy()
    for number, image in enumerate(images):
        Image.fromarray(image).save(folder / f"digit-{number:02d}.png")
    return folder, images


# --- the pieces --------------------------------------------------------------------------------------


def test_auroc_is_the_share_of_pairs_ordered_right():
    generator = np.random.default_rng(0)
    inliers, outliers = generator.normal(size=40).round(1), generator.normal(0.5, size=30).round(1)
    pairs = [(1.0 if o > i else 0.5 if o == i else 0.0) for i, o in itertools.product(inliers, outliers)]
    assert auroc(inliers, outliers) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert auroc([0, 1], [2, 3]) == 1.0 and auroc([2, 3], [0, 1]) == 0.0 and auroc([1, 1], [1]) == 0.5


def test_complexity_subtracts_the_code_length_in_nats():
    assert complexity(np.array([100.0]), np.array([8.0]))[0] == pytest.approx(100 - 8 * math.log(2))


def test_codec_bits_are_the_length_of_the_file_pillow_writes(grey_mnist):
    grey = grey_mnist.test.batch(torch.arange(3))
    binary = (grey > 0.5).to(torch.uint8) * 255
    for codec, fmt, options in (("png", "PNG", {"optimize": True}), ("webp", "WEBP", {"lossless": True, "quality": 100, "method": 6})):
        buffer = io.BytesIO()
        Image.fromarray((grey[0].reshape(28, 28) * 255).round().byte().numpy()).save(buffer, format=fmt, **options)
        assert codec_bits(grey, (1, 28, 28), codec)[0] == 8 * len(buffer.getvalue())
    buffer = io.BytesIO()
    Image.fromarray(binary[0].reshape(28, 28).numpy()).save(buffer, format="PNG", optimize=True)
    assert codec_bits(binary, (1, 28, 28), "png")[0] < 8 * len(buffer.getvalue())  # binary pixels: a 1-bit PNG


def test_a_zero_posterior_shift_changes_no_weight_and_zero_steps_no_regret(vae_run):
    vae = vae_run.vae
    x = load_source(vae_run, "mnist")[0].batch(torch.arange(8))
    sizes = {site: 4 for site in latent_sites(vae)}
    zeros = {site: (x.new_zeros(8, size), x.new_zeros(8, size)) for site, size in sizes.items()}
    torch.manual_seed(3)
    plain = particle_log_weights(vae.model, vae.guide, 5, x, None)[0]
    torch.manual_seed(3)
    shifted = particle_log_weights(vae.model, PosteriorShift(zeros)(vae.guide), 5, x, None)[0]
    assert torch.equal(plain, shifted)
    assert torch.equal(likelihood_regret(vae, x, None, steps=0), torch.zeros(8))
    assert likelihood_regret(vae, x, None, steps=20).mean() > 0  # re-fitting to the one image gains


def test_posterior_parameters_are_the_encoders_gaussian(vae_run):
    vae = vae_run.vae
    x = load_source(vae_run, "mnist")[0].batch(torch.arange(5))
    [(loc, scale)] = vae.posterior_parameters(x)
    z_loc, z_log_scale = vae.encoder(x).split(4, dim=-1)
    assert torch.allclose(loc, z_loc) and torch.allclose(scale, z_log_scale.exp())


# --- Python API ------------------------------------------------------------------------------------------


def test_run_methods_take_uint8_and_float_arrays_in_any_layout(vae_run, digit_folder):
    _, images = digit_folder
    as_uint8 = vae_run.encode(images)
    as_float = vae_run.encode(torch.from_numpy(images).float().div(255).unsqueeze(-1))  # (N, H, W, 1)
    assert as_uint8["z_loc"].shape == (12, 4) and as_uint8["z_scale"].min() > 0
    assert np.array_equal(as_uint8["z_loc"], as_float["z_loc"])
    assert vae_run.reconstruct(images).shape == (12, 28, 28)
    scores = vae_run.score(images, k=4, scores=("nll", "complexity"))
    assert set(scores) == {"log_likelihood", "bits_per_dim", "nll", "webp_bits", "complexity"}
    assert np.allclose(scores["nll"], -scores["log_likelihood"])  # a Bernoulli run's bound is of the binary image
    assert np.allclose(scores["bits_per_dim"], scores["nll"] / (784 * math.log(2)))


def test_a_conditional_hierarchy_encodes_every_group_with_the_images_labels(deep_cvae_run, data_root):
    images, _ = load_source(deep_cvae_run, "mnist")
    codes = encode(deep_cvae_run, images.take(torch.arange(50)), samples=3)
    assert codes["z_2_loc"].shape == (50, 2) and codes["z_1_loc"].shape == (50, 4)
    assert codes["z_1_samples"].shape == (50, 3, 4)
    means = deep_cvae_run.vae.posterior_means(images.batch(torch.arange(50)), deep_cvae_run.vae.one_hot(images.labels[:50]))
    assert np.allclose(codes["z_1_loc"], means[-1].numpy())


# --- the command line ------------------------------------------------------------------------------------


def test_encode_writes_npz_npy_and_csv_in_the_sources_order(vae_run, digit_folder, tmp_path):
    folder, images = digit_folder
    for suffix in ("npz", "npy", "csv"):
        result = run_here("encode", vae_run.path, "--dataset", folder, "--out", tmp_path / f"z.{suffix}", "--device", "cpu")
        assert result.returncode == 0, result.stderr
    archive = np.load(tmp_path / "z.npz")
    assert list(archive["names"]) == [f"digit-{n:02d}.png" for n in range(12)]
    assert np.allclose(archive["z_loc"], vae_run.encode(images)["z_loc"], atol=1e-6)
    assert np.allclose(np.load(tmp_path / "z.npy"), archive["z_loc"], atol=1e-6)
    rows = list(csv.DictReader((tmp_path / "z.csv").open()))
    assert len(rows) == 12 and rows[3]["name"] == "digit-03.png"
    assert float(rows[3]["z_loc_2"]) == pytest.approx(archive["z_loc"][3, 2], abs=1e-5)


def test_reconstruct_writes_pairs_and_score_rates_the_same_images_at_half(vae_run, data_root, tmp_path):
    env = {"PYRO_VAE_DATA": str(data_root)}
    assert run_here("reconstruct", vae_run.path, "--n", "5", "--out", tmp_path / "r.npy", env_extra=env).returncode == 0
    pairs = np.load(tmp_path / "r.npy")
    assert pairs.shape == (5, 2, 28, 28) and set(np.unique(pairs[:, 0])) <= {0.0, 1.0}  # the binarized inputs
    result = run_here("score", vae_run.path, "--split", "test", "--k", "2", "--reference", "mnist", "--codec", "png",
                      "--out", tmp_path / "s.csv", "--json", env_extra=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_images"] == 10000 and summary["auroc"] == {"nll": 0.5, "complexity": 0.5}  # the same draws
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == 10000 and {"label", "nll", "complexity", "png_bits"} <= set(rows[0])


@pytest.mark.parametrize("arguments, words", [
    (["encode", "no-such-run", "--out", "z.npz"], "does not exist"),
    (["encode", "{run}", "--out", "z.txt"], "--out must end in"),
    (["encode", "{run}", "--dataset", "{empty}", "--out", "z.npz"], "is empty"),
    (["encode", "{run}", "--dataset", "{broken}", "--out", "z.npz"], "not an image Pillow can read"),
    (["encode", "{run}", "--dataset", "{two_channels}", "--out", "z.npz"], "C 1 or 3"),
    (["encode", "{cvae}", "--dataset", "{digits}", "--out", "z.npz"], "encodes each image with its label"),
    (["score", "{run}", "--scores", "nll,magic", "--out", "s.csv"], "--scores takes"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(arguments, words, vae_run, deep_cvae_run, digit_folder, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    np.save(tmp_path / "two.npy", np.zeros((3, 28, 28, 2), dtype=np.uint8))
    names = {"run": vae_run.path, "cvae": deep_cvae_run.path, "empty": tmp_path / "empty", "broken": tmp_path / "broken",
             "two_channels": tmp_path / "two.npy", "digits": digit_folder[0]}  # fmt: skip
    result = run_here(*[str(argument).format(**names) for argument in arguments], cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and words in result.stderr, result.stderr


def test_evaluate_gives_the_codecs_bits_per_dim_of_the_same_8_bit_test_images(tmp_path, data_root, vae_run, monkeypatch):
    from pyro_vae import evaluate
    from pyro_vae.data import load_data

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = train(tiny(data_root, likelihood="discretized-logistic"), out=tmp_path / "logistic", quiet=True, echo=None)
    figures = evaluate(run, k=1, data_dir=str(data_root), fid=False)
    test = load_data(run.config, run.device).test
    for codec in ("png", "webp"):
        expected = codec_bits(test.floats(), (1, 28, 28), codec).sum() / (len(test) * 784)
        assert getattr(figures, f"{codec}_bits_per_dim") == pytest.approx(expected, rel=1e-12)
    assert figures.webp_bits_per_dim < figures.png_bits_per_dim < 8
    assert evaluate(run, k=1, data_dir=str(data_root), fid=False).png_bits_per_dim == figures.png_bits_per_dim  # cached
    assert evaluate(vae_run, k=1, data_dir=str(data_root), fid=False).png_bits_per_dim is None  # binary data: none


def test_m2_sums_the_label_out_and_completion_scores_its_hidden_pixels(tmp_path, data_root):
    m2 = train(tiny(data_root, labels=100), out=tmp_path / "m2", quiet=True, echo=None)
    images, _ = load_source(m2, "mnist")
    few = images.take(torch.arange(20))
    codes = encode(m2, few)
    assert codes["class_probs"].shape == (20, 10) and np.allclose(codes["class_probs"].sum(1), 1, atol=1e-5)
    x = few.batch(torch.arange(20))
    by_class = [m2.vae.posterior_parameters(x, m2.vae.one_hot(torch.full((20,), c)))[0][0] for c in range(10)]
    mixture_mean = sum(torch.from_numpy(codes["class_probs"][:, [c]]) * by_class[c] for c in range(10))
    assert np.allclose(codes["z_loc"], mixture_mean.numpy(), atol=1e-5)
    assert m2.reconstruct(x.reshape(-1, 28, 28)).shape == (20, 28, 28)
    completion = train(tiny(data_root, visible_quadrants=2, baseline_epochs=1, epochs=2), out=tmp_path / "completion",
                       quiet=True, echo=None)  # fmt: skip
    scored = completion.score(x.reshape(-1, 28, 28), k=3, scores=("nll", "regret"), regret_steps=2)
    assert np.allclose(scored["bits_per_dim"], scored["nll"] / (completion.vae.scored_pixels * math.log(2)))
    assert completion.vae.scored_pixels == 392 and np.isfinite(scored["regret"]).all()
    with pytest.raises(PyroVAEError, match="hidden pixels"):
        completion.score(x.reshape(-1, 28, 28), k=3)


def test_the_leaderboard_puts_the_codecs_beside_8_bit_rows():
    from pyro_vae.leaderboard import markdown_table

    row = {"variant": "vae-logistic", "log_likelihood": -2000.0, "log_likelihood_se": 1.0, "k": 100, "elbo": -2010.0,
           "active_units": 8, "fid": None, "epochs": 1, "train_seconds": 60, "device": "cpu", "seconds_per_epoch": 60,
           "paper": None, "paper_nll": None, "command": "pyro-vae train", "bits_per_dim": 3.68,
           "png_bits_per_dim": 4.75, "webp_bits_per_dim": 3.95}  # fmt: skip
    table = markdown_table([row])
    assert "vae-logistic 3.6800; the lossless codecs on the same test images" in table and "PNG 4.7500" in table
    assert "lossless codecs" not in markdown_table([{**row, "png_bits_per_dim": None}])


def test_images_of_another_size_and_colour_are_converted_as_train_converts_them(vae_run, tmp_path):
    from pyro_vae.sources import convert

    colour = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "colour.npy", colour)
    result = run_here("encode", vae_run.path, "--dataset", tmp_path / "colour.npy", "--out", tmp_path / "z.npz")
    assert result.returncode == 0, result.stderr
    by_hand = convert(torch.from_numpy(colour).permute(0, 3, 1, 2), (28, 28), 1)  # luma, then an antialiased resize
    assert np.array_equal(np.load(tmp_path / "z.npz")["z_loc"], vae_run.encode(by_hand[:, 0])["z_loc"])


def test_splits_all_is_train_then_test_and_auto_takes_a_sources_own_test_split(vae_run, grey_mnist, digit_folder):
    every, _ = load_source(vae_run, "mnist", "all")
    train, _ = load_source(vae_run, "mnist", "train")
    test, _ = load_source(vae_run, "mnist", "auto")
    assert (len(every), len(train), len(test)) == (70000, 60000, 10000)
    assert torch.equal(every.labels, torch.cat([train.labels, test.labels]))
    assert torch.equal(test.labels, grey_mnist.test.labels.cpu())
    folder, images = digit_folder
    whole, names = load_source(vae_run, str(folder))  # no test split of its own: every image, in order
    held_out, held_names = load_source(vae_run, str(folder), "test")  # the run's held-out share of it
    assert len(whole) == 12 and len(held_out) == 1 and held_names[0] in names


def test_reconstruct_takes_every_image_into_an_array_and_32_into_a_grid(vae_run, digit_folder, tmp_path):
    folder, _ = digit_folder
    assert run_here("reconstruct", vae_run.path, "--dataset", folder, "--out", tmp_path / "all.npy").returncode == 0
    assert np.load(tmp_path / "all.npy").shape == (12, 2, 28, 28)
    grid = run_here("reconstruct", vae_run.path, "--out", tmp_path / "grid.png")  # the 10,000 test digits
    assert grid.returncode == 0 and "wrote 32 images" in grid.stdout, grid.stderr
