"""MNIST as device tensors: shapes, binarization, and where the data root comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pyro_vae.data import load_mnist
from pyro_vae.storage import resolve_data_root


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("PYRO_VAE_DATA", str(tmp_path / "from-env"))
    assert resolve_data_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert resolve_data_root(None) == tmp_path / "from-env"
    monkeypatch.delenv("PYRO_VAE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_root(None) == Path(tmp_path / "cache" / "pyro-vae" / "data")


def test_splits_are_whole_uint8_tensors_and_binarization_is_dynamic_for_train_fixed_for_test(data_root):
    data = load_mnist(str(data_root), torch.device("cpu"), binarize=True)
    assert data.train.images.shape == (60000, 784) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (10000, 784) and data.test.labels.dtype == torch.int64
    assert data.image_shape == (1, 28, 28) and data.class_names == tuple("0123456789")
    grey_train = data.train.floats()
    assert grey_train.dtype == torch.float32 and 0 <= grey_train.min() and grey_train.max() == 1
    assert set(data.test.images.unique().tolist()) == {0, 255}  # binarized once, kept as uint8
    assert set(data.test.floats().unique().tolist()) == {0.0, 1.0}
    again = load_mnist(str(data_root), torch.device("cpu"), binarize=True)
    assert torch.equal(data.test.images, again.test.images)  # the same fixed-seed draw every load
    # the draw every committed MNIST result was scored on: torch.bernoulli of the grey split, seed 1234
    reference = torch.bernoulli(grey_test(data_root), generator=torch.Generator().manual_seed(1234))
    assert torch.equal(data.test.floats(), reference)
    index = torch.arange(5000)
    first, second = data.train_batch(index), data.train_batch(index)
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(first, second)  # a fresh draw for every batch
    assert abs(first.mean().item() - grey_train[index].mean().item()) < 2e-3
    grey = load_mnist(str(data_root), torch.device("cpu"), binarize=False)
    assert torch.equal(grey.train_batch(index), grey_train[index])  # the normal likelihood sees grey pixels
    grey_test_images = grey.test.floats()
    assert ((grey_test_images > 0) & (grey_test_images < 1)).any()


def grey_test(data_root):
    import torchvision

    return torchvision.datasets.MNIST(str(data_root), train=False).data.reshape(-1, 784).float() / 255


def test_fashion_mnist_missing_or_corrupt_is_a_one_line_error(monkeypatch, tmp_path):
    """Read through torchvision's FashionMNIST; where no copy is found, or a file is damaged, the
    error names what to do, on one line."""
    import pyro_vae.data as data
    import pyro_vae.sources.named as sources
    from pyro_vae import PyroVAEError

    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PYRO_VAE_OFFLINE", "1")
    with pytest.raises(PyroVAEError, match="apt-get install dataset-fashion-mnist") as missing:
        data.load_dataset("fashion-mnist", str(tmp_path / "empty"), torch.device("cpu"), binarize=False)
    assert "\n" not in str(missing.value)
    raw = tmp_path / "damaged" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in sources.FASHION_FILES:
        (raw / stem).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)  # a header that promises more
    with pytest.raises(PyroVAEError, match="could not read Fashion-MNIST") as damaged:
        data.load_dataset("fashion-mnist", str(tmp_path / "damaged"), torch.device("cpu"), binarize=False)
    assert "\n" not in str(damaged.value)


def test_fashion_mnist_is_downloaded_where_no_copy_is_found(monkeypatch, tmp_path):
    """Like MNIST, CIFAR-10 and SVHN: with no copy on disk and PYRO_VAE_OFFLINE unset, torchvision is
    asked to download it into the data root; a failed download is one line naming the folder."""
    import torchvision

    import pyro_vae.data as data
    import pyro_vae.sources.named as sources
    from pyro_vae import PyroVAEError

    asked = []

    class NoNetworkFashionMNIST:  # torchvision's reader as it behaves with no network
        def __init__(self, root, train, download):
            asked.append((root, download))
            raise RuntimeError("Dataset not found. You can use download=True to download it" if not download
                               else "Error downloading train-images-idx3-ubyte.gz: network unreachable")

    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PYRO_VAE_OFFLINE", raising=False)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", NoNetworkFashionMNIST)
    with pytest.raises(PyroVAEError, match="download failed .*network unreachable") as failed:
        data.load_dataset("fashion-mnist", str(tmp_path / "empty"), torch.device("cpu"), binarize=False)
    assert "\n" not in str(failed.value) and "apt-get install dataset-fashion-mnist" in str(failed.value)
    assert asked == [(str(tmp_path / "empty"), False), (str(tmp_path / "empty"), True)]
