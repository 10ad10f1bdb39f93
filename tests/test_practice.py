"""The training practice of deep VAEs (practice.py): the learning rate's schedule by its equation, the
skipped non-finite update, the weight average that evaluation reads, Adamax, and a hierarchy with all
of them resumed bit for bit through the CLI on real MNIST."""

from __future__ import annotations

import math

import pyro
import pytest
import torch

from pyro_vae import Config, PyroVAEError
from pyro_vae.checkpoint import load_checkpoint
from pyro_vae.inference import _step, make_svi
from pyro_vae.models import build_model
from pyro_vae.practice import WeightAverage, averaged_weights, learning_rate


def test_the_learning_rate_warms_up_linearly_then_falls_on_a_half_cosine():
    config = Config(learning_rate=2e-3, epochs=10, lr_warmup=2, lr_schedule="cosine")
    steps = 100  # per epoch: the run has 1,000 steps, the warm-up 200
    assert learning_rate(config, 50, steps) == pytest.approx(2e-3 * 50 / 200 * 0.5 * (1 + math.cos(math.pi * 0.05)))
    assert learning_rate(config, 500, steps) == pytest.approx(2e-3 * 0.5)
    assert learning_rate(config, 1000, steps) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(Config(learning_rate=2e-3), 7, steps) == 2e-3  # the default: constant, no warm-up


def small(**overrides):
    torch.manual_seed(0)
    pyro.clear_param_store()
    config = Config(z_dim=4, hidden_dims=(32,), stochastic_layers=2, image_shape=(1, 28, 28), **overrides)
    return build_model(config), config


@pytest.mark.filterwarnings("ignore:Encountered NaN")
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "classic"])
def test_an_update_with_a_non_finite_gradient_is_skipped_under_grad_clip(fast):
    vae, config = small(grad_clip=1e4, fast=fast)
    svi = make_svi(vae, config, 60)
    x = torch.bernoulli(torch.rand(6, 784, generator=torch.Generator().manual_seed(1)))
    with svi.hot_path():  # as train_epoch steps: the classic step with Pyro's validation on
        _step(svi, 1, x, None)  # the classic step makes its per-parameter optimizers on the first step
        before = [parameter.detach().clone() for parameter in vae.parameters()]
        broken = x.clone()
        broken[0, 0] = float("nan")
        assert not math.isfinite(_step(svi, 2, broken, None)) and svi.skipped == 1
        assert all(torch.equal(old, new) for old, new in zip(before, vae.parameters()))
        assert math.isfinite(_step(svi, 3, x, None)) and svi.skipped == 1
    assert not all(torch.equal(old, new) for old, new in zip(before, vae.parameters()))


def test_the_weight_average_follows_its_recursion_and_swaps_in_and_out():
    layer = torch.nn.Linear(3, 2)
    average = WeightAverage(layer, decay=0.9)
    start = [parameter.detach().clone() for parameter in layer.parameters()]
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.add_(1.0)
    average.update()
    for mean, first in zip(average.average, start):
        torch.testing.assert_close(mean, first + 0.1)  # 0.9 * theta_0 + 0.1 * (theta_0 + 1)
    with average.applied():
        torch.testing.assert_close(layer.weight, start[0] + 0.1)
    torch.testing.assert_close(layer.weight, start[0] + 1.0)
    state = {"model": {"weight": torch.zeros(1), "bias": torch.zeros(1)}, "ema": {"weight": torch.ones(1)}}
    assert averaged_weights(state)["weight"].item() == 1.0 and averaged_weights(state)["bias"].item() == 0.0


def test_a_run_of_the_bottom_up_two_layer_model_is_refused_in_one_line():
    old = {**Config().to_dict(), "stochastic_layers": 2, "top_z_dim": 16}
    del old["upper_z_dims"]
    with pytest.raises(PyroVAEError, match="bottom-up two-layer model"):
        Config.from_dict(old)
    one_layer = {**Config().to_dict(), "top_z_dim": 16}
    assert Config.from_dict(one_layer).stochastic_layers == 1  # the unused field of a one-layer run goes


@pytest.mark.slow
def test_a_hierarchy_with_the_whole_practice_resumes_exactly_and_evaluates_its_average(tmp_path, data_root):
    """Three groups, Adamax, warm-up and cosine, the clip and the average: stopped after one epoch (as
    Ctrl-C stops it) and resumed, it ends with the bits of an uninterrupted run; the checkpoint keeps
    the average, and the run loads it."""
    from test_reliability import tensors_equal

    from pyro_vae import resume, train
    from pyro_vae.errors import TrainingInterrupted
    from pyro_vae.runs import load_run

    config = Config(stochastic_layers=3, hidden_dims=(64,), z_dim=8, optimizer="adamax", lr_warmup=1,
                    lr_schedule="cosine", grad_clip=5000.0, ema=0.99, validation=500, subset=2500, epochs=2,
                    device="cpu", data_dir=str(data_root))  # fmt: skip
    whole = train(config, out=tmp_path / "whole", quiet=True, echo=None)

    def stop(record, vae, run_dir):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(config, out=tmp_path / "halted", quiet=True, echo=None, on_epoch=stop)
    resume(tmp_path / "halted", quiet=True, echo=None)
    reference, again = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("whole", "halted"))
    for key in ("model", "ema", "optimizer", "rng", "step"):
        assert tensors_equal(again[key], reference[key]), key
    assert all("val_elbo" in record and record["skipped_updates"] == 0 for record in whole.metrics)
    run = load_run(tmp_path / "whole", device="cpu")
    for name, value in run.vae.named_parameters():
        assert torch.equal(value, reference["ema"][name]), name
    assert not all(torch.equal(reference["ema"][name], reference["model"][name]) for name in reference["ema"])


def test_free_bits_at_zero_is_the_mean_field_elbo_and_a_floor_above_every_kl_stops_its_gradient():
    """L_lambda = E_q[log p(x|z)] - sum_l max(lambda, mean KL_l): with closed-form KLs (never negative)
    lambda = 0 is TraceMeanField_ELBO's loss on the same draws; a lambda above every group's KL leaves
    the prior's own parameters (the VampPrior's pseudo-inputs, which enter only the KL) no gradient,
    and adds lambda per group and image."""
    from pyro.infer import TraceMeanField_ELBO

    from pyro_vae.objectives import FreeBits

    vae, _ = small()
    x = torch.bernoulli(torch.rand(6, 784, generator=torch.Generator().manual_seed(3)))
    pyro.set_rng_seed(4)
    floored_at_zero = FreeBits(0.0, analytic=True).loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(4)
    mean_field = TraceMeanField_ELBO().loss(vae.model, vae.guide, x)
    assert floored_at_zero == pytest.approx(mean_field, rel=1e-6)
    vae, _ = small(prior="vamp", pseudo_inputs=5)
    pyro.set_rng_seed(4)
    loss = FreeBits(1e4, analytic=True).differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    assert torch.count_nonzero(vae.latent_prior.pseudo_inputs.grad) == 0
    assert any(torch.count_nonzero(parameter.grad) for parameter in vae.decoder.parameters())
    pyro.set_rng_seed(4)
    with pyro.plate("particles", 1, dim=-2), torch.no_grad():  # FreeBits' draws
        guide = pyro.poutine.trace(vae.guide).get_trace(x)
        model = pyro.poutine.trace(pyro.poutine.replay(vae.model, trace=guide)).get_trace(x)
    reconstruction = model.nodes["x"]["fn"].log_prob(x).sum().item()
    assert loss.item() == pytest.approx(-reconstruction + 1e4 * 6 * 2, rel=1e-6)
