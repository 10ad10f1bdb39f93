"""Your own images: a folder or an array, any size, grey or colour, through the data layer and every
command. The sources are made here from real MNIST digits (written as PNG files, padded, coloured,
resized), a few hundred at a time, so nothing is downloaded and the pictures are real."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import run_main
from pyro_vae import Config, load_run, train
from pyro_vae.data import load_data

CPU = torch.device("cpu")
COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, .5, 0], [.5, 0, 1],
                    [0, .5, 1], [1, 1, 1]], dtype=np.float32)  # fmt: skip
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Decoded images are cached under XDG_CACHE_HOME: each test gets its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits(data_root):
    """The first 300 training and 300 test digits of MNIST, uint8 (n, 28, 28), and their labels."""
    import torchvision

    splits = [torchvision.datasets.MNIST(str(data_root), train=train) for train in (True, False)]
    return [(split.data[:300].numpy(), split.targets[:300].numpy()) for split in splits]


def write_pngs(folder, images, labels=None):
    """One PNG per image, named by its index; in a subfolder per class when ``labels`` are given."""
    from PIL import Image

    for index, image in enumerate(images):
        place = folder if labels is None else folder / str(labels[index])
        place.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(place / f"{index:05d}.png")


def coloured(images, labels):
    """Grey digits (n, H, W) painted in their class's colour: float (n, H, W, 3) in [0, 1]."""
    return images[..., None].astype(np.float32) / 255 * COLOURS[labels][:, None, None, :]


def test_mnist_written_as_a_class_folder_tree_is_mnist(tmp_path, digits, data_root):
    """train/<digit>/<index>.png and test/<digit>/<index>.png load to exactly the tensors of
    --dataset mnist --subset 300, and a conditional epoch from either writes the same metrics."""
    (train_images, train_labels), (test_images, test_labels) = digits
    tree = tmp_path / "mnist-tree"
    write_pngs(tree / "train", train_images, train_labels)
    write_pngs(tree / "test", test_images, test_labels)
    mnist = Config(dataset="mnist", subset=300, data_dir=str(data_root), likelihood="normal")
    folder = Config(dataset=str(tree), likelihood="normal")
    expected, loaded = load_data(mnist, CPU), load_data(folder, CPU)
    for split in ("train", "test"):
        assert torch.equal(getattr(loaded, split).images, getattr(expected, split).images)
        assert torch.equal(getattr(loaded, split).labels, getattr(expected, split).labels)
    assert loaded.image_shape == (1, 28, 28) and loaded.class_names == tuple("0123456789")
    metrics = []
    for config in (mnist, folder):
        config = Config(**{**config.to_dict(), "image_shape": None, "class_names": None, "conditional": True,
                           "likelihood": "bernoulli", "epochs": 1, "z_dim": 4, "hidden_dims": (32,), "seed": 3})  # fmt: skip
        run = train(config, out=tmp_path / f"run-{len(metrics)}", quiet=True, echo=None)
        metrics.append([{k: v for k, v in record.items() if k != "seconds"} for record in run.metrics])
    assert metrics[0] == metrics[1]


def make_colour_npz(folder, digits):
    """240 digits painted by class, (n, 28, 28, 3) float, with labels and class names."""
    (images, labels), _ = digits
    path = folder / "colour.npz"
    np.savez(path, images=coloured(images[:240], labels[:240]), labels=labels[:240], class_names=np.array(NAMES))
    return path


def make_odd_folder(folder, digits):
    """200 grey 30x30 PNGs (digits padded by a pixel), flat: no labels."""
    (images, _), _ = digits
    write_pngs(folder / "odd", np.pad(images[:200], ((0, 0), (1, 1), (1, 1))))
    return folder / "odd"


def make_wide_npy(folder, digits):
    """200 colour digits 64 high and 48 wide, uint8 (n, 3, 64, 48)."""
    (images, labels), _ = digits
    grey = torch.nn.functional.interpolate(torch.from_numpy(images[:200]).float()[:, None], size=(64, 48), mode="bilinear")
    colour = (grey * torch.from_numpy(COLOURS[labels[:200]])[:, :, None, None]).round().clamp(0, 255)
    path = folder / "wide.npy"
    np.save(path, colour.to(torch.uint8).numpy())
    return path


SOURCES = {
    # name: (make, train options, shape, what sample --out .npy holds, sample options)
    "colour npz with labels, resized": (make_colour_npz, ["--conditional", "--image-size", "16"], (3, 16, 16),
                                        (10, 16, 16, 3), ["--class", "seven", "--n", "10"]),  # fmt: skip
    "flat folder of odd-sized grey PNGs": (make_odd_folder, [], (1, 30, 30), (10, 30, 30), ["--n", "10"]),
    "64x48 colour npy with a validation split": (make_wide_npy, ["--validation", "30", "--likelihood", "continuous-bernoulli"],
                                                 (3, 64, 48), (10, 64, 48, 3), ["--n", "10"]),  # fmt: skip
}


@pytest.mark.parametrize("name", list(SOURCES))
def test_a_source_goes_through_train_resume_evaluate_sample_and_plot(name, tmp_path, digits):
    make, options, shape, sampled, sample_options = SOURCES[name]
    source, run = make(tmp_path, digits), tmp_path / "run"
    common = ["--z-dim", "4", "--hidden-dims", "32", "--batch-size", "32", "--device", "cpu", "--quiet"]
    code, out, err = run_main("train", "--dataset", source, *options, *common, "--epochs", "1", "--no-plot", "--out", run)
    assert code == 0, err
    code, out, err = run_main("train", "--resume", run, "--epochs", "2", "--quiet", "--no-plot")
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert tuple(config["image_shape"]) == shape
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in metrics] == [1, 2]
    held_out = "val_elbo" if "--validation" in options else "test_elbo"
    assert all(held_out in record and ({"val_elbo", "test_elbo"} - {held_out}).isdisjoint(record) for record in metrics)
    code, out, err = run_main("evaluate", run, "--k", "5", "--json", "--device", "cpu")
    assert code == 0, err
    result = json.loads(out)
    if "--conditional" in options:  # the classifier is trained on this source, sized to its shape, and cached
        from pyro_vae.classifier import digit_accuracy, load_or_train_classifier

        trained = load_run(run, device="cpu")
        judge = load_or_train_classifier(trained.config, CPU)
        assert result["classifier_sha256"] == judge.sha256 and result["fid"] > 0
        assert result["digit_accuracy"] == pytest.approx(sum(digit_accuracy(judge, trained.vae)) / trained.config.num_classes)
    else:  # no labels, no classifier: said, not a number
        assert result["fid"] is None and "has no labels" in result["not_measured"]["fid"]
    total = 200 if "npy" in name or "folder" in name else 240
    assert result["n_images"] == round(total * 0.1)  # the held-out tenth; --validation takes training images
    pixels, log2 = np.prod(shape), np.log(2)  # bits per dimension are per subpixel, over C x H x W
    if result["log_likelihood_dequantized"] is None:
        assert result["bits_per_dim"] == pytest.approx(-result["log_likelihood"] / (pixels * log2))
    else:
        assert result["bits_per_dim"] == pytest.approx(8 - result["log_likelihood_dequantized"] / (pixels * log2))
    code, out, err = run_main("sample", "--run", run, *sample_options, "--out", tmp_path / "x.npy", "--device", "cpu")
    assert code == 0, err
    samples = np.load(tmp_path / "x.npy")
    assert samples.shape == sampled and 0 <= samples.min() and samples.max() <= 1
    code, out, err = run_main("sample", "--run", run, *sample_options, "--out", tmp_path / "x.png", "--device", "cpu")
    assert code == 0, err
    from PIL import Image

    grid = Image.open(tmp_path / "x.png")  # 4 x 3 cells for 10 images (2 pixels of padding each)
    assert grid.size == (4 * (shape[2] + 2) + 2, 3 * (shape[1] + 2) + 2)
    code, out, err = run_main("plot", run, "--device", "cpu")
    assert code == 0, err
    assert {"elbo.png", "reconstructions.png", "latent.png", "interpolations.png"} <= {p.name for p in run.glob("*.png")}
    if "--conditional" in options:
        assert (run / "style.png").exists()
        by_index = tmp_path / "by-index.npy"  # a class by its index draws what its name draws
        code, out, err = run_main("sample", "--run", run, "--class", "7", "--n", "10", "--out", by_index, "--device", "cpu")
        assert code == 0, err
        assert np.array_equal(np.load(by_index), samples)


def test_semi_supervised_on_a_labelled_npz_keeps_balanced_labels_of_its_classes(tmp_path, digits):
    """--labels N on a source of one's own: N / classes labels of each class, the classifier sized to
    the source's classes and shape, evaluated and sampled by class name."""
    source, run = make_colour_npz(tmp_path, digits), tmp_path / "semi"
    code, out, err = run_main("train", "--dataset", source, "--conditional", "--labels", "50", "--image-size", "12",
                              "--z-dim", "4", "--hidden-dims", "32", "--epochs", "1", "--device", "cpu", "--quiet",
                              "--no-plot", "--out", run)  # fmt: skip
    assert code == 0, err
    labeled = json.loads((run / "labeled.json").read_text())["indices"]
    data = load_data(load_run(run, device="cpu").config, CPU)
    assert np.bincount(data.train.labels[labeled].numpy(), minlength=10).tolist() == [5] * 10
    code, out, err = run_main("evaluate", run, "--k", "3", "--json", "--no-fid", "--device", "cpu")
    assert code == 0, err
    test = data.test
    by_hand = (load_run(run, device="cpu").vae.classify(test.floats()).logits.argmax(-1) == test.labels).float().mean()
    assert json.loads(out)["classification_accuracy"] == pytest.approx(by_hand.item())
    code, out, err = run_main("sample", "--run", run, "--class", "zero", "--n", "4", "--out", tmp_path / "z.npy")
    assert code == 0, err
    assert np.load(tmp_path / "z.npy").shape == (4, 12, 12, 3)


def test_a_held_out_split_on_disk_is_binarized_the_same_in_any_order(tmp_path, digits, monkeypatch):
    """Bernoulli: a test split too large to hold is binarized image by image with its own seed, so the
    pixels of an image do not depend on which batch asks for it, and follow its grey levels."""
    monkeypatch.setenv("PYRO_VAE_MEMORY_LIMIT", "1K")
    test = load_data(Config(dataset=str(make_wide_npy(tmp_path, digits))), CPU).test
    assert type(test.images).__name__ == "_BinarizedImages"
    whole, backwards = test.floats(), test.batch(torch.arange(len(test) - 1, -1, -1))
    assert set(whole.unique().tolist()) <= {0.0, 1.0} and torch.equal(backwards.flip(0), whole)
    grey = load_data(Config(dataset=str(tmp_path / "wide.npy"), likelihood="normal"), CPU).test.floats()
    assert abs(whole.mean().item() - grey.mean().item()) < 0.01


def test_completion_compare_and_leaderboard_on_a_folder_of_30x30_images(tmp_path, digits):
    folder = make_odd_folder(tmp_path, digits)
    common = ["--dataset", folder, "--z-dim", "4", "--hidden-dims", "32", "--device", "cpu"]
    code, out, err = run_main("train", *common, "--visible-quadrants", "2", "--baseline-epochs", "1", "--epochs", "2",
                              "--quiet", "--no-plot", "--out", tmp_path / "complete")  # fmt: skip
    assert code == 0, err
    code, out, err = run_main("complete", "--run", tmp_path / "complete", "--n", "3", "--draws", "2", "--device", "cpu",
                              "--out", tmp_path / "c.png")  # fmt: skip
    assert code == 0, err
    from PIL import Image

    code, out, err = run_main("complete", "--run", tmp_path / "complete", "--n", "4", "--draws", "2", "--device", "cpu",
                              "--out", tmp_path / "c4.png")  # fmt: skip
    assert code == 0, err
    with Image.open(tmp_path / "c.png") as three, Image.open(tmp_path / "c4.png") as four:
        assert np.asarray(three).std() > 5
        # one more image is one more row of the 5 columns (input, truth, baseline, two draws): 7.6 / 5 inches
        assert four.size[0] == three.size[0] and four.size[1] - three.size[1] == pytest.approx(100 * 7.6 / 5, abs=2)
    code, out, err = run_main("compare", *common, "--epochs", "1", "--likelihoods", "bernoulli,normal", "--k", "5",
                              "--out", tmp_path / "compare")  # fmt: skip
    assert code == 0, err
    records = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert [record["n_images"] for record in records] == [20, 20]
    runs = [tmp_path / "compare" / "runs" / name for name in ("bernoulli-analytic", "normal-analytic")]
    code, out, err = run_main("leaderboard", *runs, "--k", "5", "--device", "cpu", "--out", tmp_path / "board")
    assert code != 0 and "one set of test images" in err  # binarized and grey test images are not one set
    code, out, err = run_main("leaderboard", runs[0], "--k", "5", "--device", "cpu", "--out", tmp_path / "board")
    assert code == 0, err
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "not measured (" in board and "has no labels" in board  # a flat folder: no classifier, no FID


def test_a_source_on_disk_trains_exactly_as_the_same_source_in_memory(tmp_path, digits, monkeypatch):
    """With the memory limit below the data, batches are read from the file on disk; the run is the
    same, draw for draw, as with the images on the device, and resumes exactly."""
    path = make_wide_npy(tmp_path, digits)
    config = dict(dataset=str(path), likelihood="normal", epochs=2, z_dim=4, hidden_dims=(16,), batch_size=32, seed=5)
    in_memory = train(Config(**config), out=tmp_path / "memory", quiet=True, echo=None)
    monkeypatch.setenv("PYRO_VAE_MEMORY_LIMIT", "1K")
    data = load_data(Config(**config, image_shape=(3, 64, 48)), CPU)
    assert type(data.train.images).__name__ == "DiskImages"
    on_disk = train(Config(**{**config, "epochs": 1}), out=tmp_path / "on-disk", quiet=True, echo=None)
    from pyro_vae.training import resume

    on_disk = resume(on_disk.path, epochs=2, quiet=True, echo=None)
    strip = lambda run: [{k: v for k, v in record.items() if k != "seconds"} for record in run.metrics]  # noqa: E731
    assert strip(on_disk) == strip(in_memory)
    weights = load_run(on_disk.path, device="cpu").vae.state_dict()
    assert all(torch.equal(weights[name], value) for name, value in in_memory.vae.state_dict().items())


def write_smooth_images(path, count: int, shape=(3, 64, 64)) -> int:
    """A uint8 .npy of ``count`` random images made of 8x8-pixel blocks, written in plain chunks (so
    this process does not hold it either); returns its size in bytes."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (count, *shape)}
    generator = np.random.default_rng(0)
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_2_0(handle, header)
        for start in range(0, count, 4000):
            block = generator.integers(0, 256, size=(min(4000, count - start), shape[0], shape[1] // 8, shape[2] // 8),
                                       dtype=np.uint8)  # fmt: skip
            handle.write(block.repeat(8, axis=2).repeat(8, axis=3).tobytes())
    return path.stat().st_size


def peak_memory_of_training(path, out) -> int:
    """Peak resident bytes of a child process that trains one epoch on ``path`` (memory limit 200 MB):
    its VmHWM, which exec starts afresh (getrusage's ru_maxrss would carry this test process's own
    peak over from the fork)."""
    script = (
        "def peak_resident_bytes():\n"
        "    line = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
        "    return int(line.split()[1]) * 1024\n"
        "import sys\n"
        "from pyro_vae import Config, train\n"
        "train(Config(dataset=sys.argv[1], likelihood='normal', epochs=1, z_dim=2, hidden_dims=(8,),"
        " batch_size=64, device='cpu'), out=sys.argv[2], quiet=True, echo=None)\n"
        "print(peak_resident_bytes())\n"
    )
    env = {**os.environ, "PYRO_VAE_MEMORY_LIMIT": "200M"}
    child = subprocess.run([sys.executable, "-c", script, str(path), str(out)], capture_output=True, text=True,
                           env=env, timeout=600)  # fmt: skip
    assert child.returncode == 0, child.stderr
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1 and np.isfinite(metrics[0]["test_elbo"])
    return int(child.stdout.split()[-1])


@pytest.mark.slow
def test_training_from_an_array_on_disk_never_holds_it(tmp_path):
    """A child process trains an epoch on a 246 MB uint8 .npy (20,000 colour images of 64x64) with the
    memory limit at 200 MB: its peak resident memory is above that of the same training on 2,000 such
    images by less than a quarter of the array (its held-out tenth, 25 MB, is in memory; measured 15 MiB
    above). The bound is relative because a process that imports torch is itself 0.5 to 1 GB resident,
    by machine and build (measured 758 to 1,066 MiB for the 2,000 images), more than this array. The
    Normal likelihood keeps the epoch short (10 s here; the continuous Bernoulli's normalizer takes 30)."""
    size = write_smooth_images(tmp_path / "big.npy", 20_000)
    write_smooth_images(tmp_path / "small.npy", 2_000)
    peak = peak_memory_of_training(tmp_path / "big.npy", tmp_path / "big")
    control = peak_memory_of_training(tmp_path / "small.npy", tmp_path / "small")
    report = f"peak {peak / 2**20:.0f} MiB, 2,000 images {control / 2**20:.0f} MiB, array {size / 2**20:.0f} MiB"
    assert peak - control < size / 4, report


def test_an_npz_with_test_images_is_its_own_split(tmp_path, digits):
    """`test_images` (and `test_labels`) in an .npz are the test split as given: nothing is held out."""
    (train_images, train_labels), (test_images, test_labels) = digits
    path = tmp_path / "split.npz"
    np.savez(path, images=train_images[:120], labels=train_labels[:120], test_images=test_images[:50],
             test_labels=test_labels[:50], class_names=np.array(NAMES))  # fmt: skip
    data = load_data(Config(dataset=str(path), test_fraction=0.5, likelihood="discretized-logistic"), CPU)
    assert len(data.train) == 120 and len(data.test) == 50
    assert torch.equal(data.test.labels, torch.as_tensor(test_labels[:50], dtype=torch.int64))
    expected = torch.as_tensor(test_images[:50]).reshape(50, -1).float().div(255)  # 8-bit, not binarized
    assert torch.equal(data.test.batch(torch.arange(50)), expected)
