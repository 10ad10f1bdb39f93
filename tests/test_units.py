"""Fast checks of shapes, configuration, devices, checkpoints and sampling, without MNIST."""

from __future__ import annotations

import pickle

import pyro.poutine as poutine
import pytest
import torch

from pyro_vae import Config, PyroVAEError, VAE
from pyro_vae.checkpoint import load_checkpoint, load_weights, save_checkpoint
from pyro_vae.config import parse_hidden_dims
from pyro_vae.data import one_hot
from pyro_vae.device import resolve_device
from pyro_vae.sampling import sample_images


@pytest.mark.parametrize("conditional", [False, True])
def test_model_and_guide_sites_have_the_documented_shapes(conditional):
    vae = VAE(Config(z_dim=3, hidden_dims=(16, 8), conditional=conditional))
    x = torch.bernoulli(torch.full((5, 784), 0.3))
    y = one_hot(torch.arange(5), 10)
    guide_trace = poutine.trace(vae.guide).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x, y)
    z_fn = guide_trace.nodes["z"]["fn"]
    assert (z_fn.batch_shape, z_fn.event_shape) == ((5,), (3,))
    x_site = model_trace.nodes["x"]
    assert x_site["is_observed"] and x_site["fn"].batch_shape == (5,) and x_site["fn"].event_shape == (784,)
    assert model_trace.nodes["z"]["fn"].event_shape == (3,)
    assert [frame.name for frame in x_site["cond_indep_stack"]] == ["data"]
    q = vae.posterior(x, vae.condition(y) if conditional else None).base_dist
    z_loc, z_scale = q.loc, q.scale
    assert z_loc.shape == z_scale.shape == (5, 3) and bool((z_scale > 0).all())


def test_conditional_label_enters_every_layer_by_default():
    vae = VAE(Config(z_dim=4, hidden_dims=(16, 8), conditional=True))
    assert [layer.in_features for layer in vae.decoder.net.layers] == [4 + 10, 8 + 10, 16 + 10]
    input_only = VAE(Config(z_dim=4, hidden_dims=(16, 8), conditional=True, label_every_layer=False))
    assert [layer.in_features for layer in input_only.decoder.net.layers] == [4 + 10, 8, 16]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"batch_size": -3}, "batch_size"),
        ({"z_dim": 0}, "z_dim"),
        ({"hidden_dims": (400, 0)}, "hidden_dims"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"normal_scale": -1.0}, "normal_scale"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"elbo": "renyi"}, "elbo"),
    ],
)
def test_config_rejects_nonsense(changes, message):
    with pytest.raises(PyroVAEError, match=message):
        Config(**changes)


def test_config_round_trips_through_json(tmp_path):
    config = Config(hidden_dims=(300, 200), conditional=True, likelihood="normal")
    config.save_json(tmp_path / "config.json")
    assert Config.load_json(tmp_path / "config.json") == config
    assert parse_hidden_dims("512,256") == (512, 256)
    with pytest.raises(PyroVAEError, match="hidden-dims"):
        parse_hidden_dims("wide")


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(PyroVAEError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(PyroVAEError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(PyroVAEError):
        resolve_device(f"cuda:{torch.cuda.device_count() + 7}")


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    vae = VAE(Config(z_dim=3, hidden_dims=(16,)))
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"config": vae.config.to_dict(), "epoch": 1, "model": vae.state_dict()})
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and not (tmp_path / "checkpoint.pt.tmp").exists()
    other = VAE(Config(z_dim=4, hidden_dims=(16,)))
    with pytest.raises(PyroVAEError, match="does not match"):
        load_weights(other, state["model"], path)


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"format_version": 1, "payload": Exploit()}))
    with pytest.raises(PyroVAEError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 10])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(PyroVAEError):
        load_checkpoint(path)


def test_sampling_shapes_range_and_seed():
    vae = VAE(Config(z_dim=3, hidden_dims=(16,), conditional=True))
    images, labels = sample_images(vae, n=7, digit=4, seed=1)
    assert images.shape == (7, 28, 28) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1 and bool((labels == 4).all())
    torch.testing.assert_close(images, sample_images(vae, n=7, digit=4, seed=1)[0])
    assert not torch.equal(images, sample_images(vae, n=7, digit=4, seed=2)[0])
    grid, grid_labels = sample_images(vae, n=25, seed=0)
    assert grid.shape == (30, 28, 28) and grid_labels.tolist() == sorted(list(range(10)) * 3)
    for bad_digit in (10, -1):
        with pytest.raises(PyroVAEError, match="0 to 9"):
            sample_images(vae, n=2, digit=bad_digit)
    with pytest.raises(PyroVAEError, match="conditional"):
        sample_images(VAE(Config(z_dim=3, hidden_dims=(16,))), n=2, digit=3)
