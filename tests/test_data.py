"""MNIST as device tensors: shapes, binarization, and where the data root comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pyro_vae.data import load_mnist, resolve_data_root


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("PYRO_VAE_DATA", str(tmp_path / "from-env"))
    assert resolve_data_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert resolve_data_root(None) == tmp_path / "from-env"
    monkeypatch.delenv("PYRO_VAE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_root(None) == Path(tmp_path / "cache" / "pyro-vae" / "data")


def test_splits_are_whole_tensors_and_binarization_is_dynamic_for_train_fixed_for_test(data_root):
    data = load_mnist(str(data_root), torch.device("cpu"), binarize=True)
    assert data.train.images.shape == (60000, 784) and data.train.images.dtype == torch.float32
    assert data.test.images.shape == (10000, 784) and data.test.labels.dtype == torch.int64
    assert 0 <= data.train.images.min() and data.train.images.max() == 1
    assert set(data.test.images.unique().tolist()) == {0.0, 1.0}
    again = load_mnist(str(data_root), torch.device("cpu"), binarize=True)
    assert torch.equal(data.test.images, again.test.images)  # the same fixed-seed draw every load
    first, second = data.train_epoch(), data.train_epoch()
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(first, second)  # a fresh draw each epoch
    assert abs(first.mean().item() - data.train.images.mean().item()) < 1e-3
    grey = load_mnist(str(data_root), torch.device("cpu"), binarize=False)
    assert torch.equal(grey.train_epoch(), grey.train.images)  # the normal likelihood sees grey pixels
    assert ((grey.test.images > 0) & (grey.test.images < 1)).any()


def test_fashion_mnist_missing_or_corrupt_is_a_one_line_error(monkeypatch, tmp_path):
    """Read through torchvision's FashionMNIST; where no copy is found, or a file is damaged, the
    error names what to do, on one line."""
    import pyro_vae.data as data
    from pyro_vae import PyroVAEError

    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(PyroVAEError, match="apt-get install dataset-fashion-mnist") as missing:
        data.load_dataset("fashion-mnist", str(tmp_path / "empty"), torch.device("cpu"), binarize=False)
    assert "\n" not in str(missing.value)
    raw = tmp_path / "damaged" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in data.FASHION_FILES:
        (raw / stem).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)  # a header that promises more
    with pytest.raises(PyroVAEError, match="could not read Fashion-MNIST") as damaged:
        data.load_dataset("fashion-mnist", str(tmp_path / "damaged"), torch.device("cpu"), binarize=False)
    assert "\n" not in str(damaged.value)
