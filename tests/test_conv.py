"""Convolutional networks (``--network conv``) and the discretized logistic likelihood: shapes for any
(C, H, W), the parameter count the config promises, the 256 probabilities of a subpixel summing to 1,
the log-probability against the logistic CDF written out in float64, and every piece composed with the
conv networks through the real CLI on real MNIST and on a colour array of an odd size."""

from __future__ import annotations

import json
import math

import numpy as np
import pyro
import pytest
import torch

from conftest import run_main
from pyro_vae import Config, PyroVAEError, build_model
from pyro_vae.checkpoint import load_checkpoint
from pyro_vae.likelihoods import BIN_HALF_WIDTH, DiscretizedLogistic, likelihood_for
from pyro_vae.models import check_size, parameter_count
from pyro_vae.networks import ConvDecoder, ConvEncoder

LEVELS = torch.arange(256, dtype=torch.float64) / 255


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 13, 17), (3, 5, 7), (1, 64, 48)], ids=str)
def test_conv_networks_fit_any_image_shape(shape):
    """Padded to what three stride-2 layers need and cropped back: x (n, C*H*W) -> (n, out), z -> (n,
    outputs * C*H*W); an enumerated label (10, 1, 10) against n images gives (10, n, ...)."""
    pixels = math.prod(shape)
    encoder = ConvEncoder(shape, (4, 8, 8), out_dim=6, condition_dim=10)
    decoder = ConvDecoder(3, (4, 8, 8), shape, outputs=2, condition_dim=10)
    x, labels = torch.rand(5, pixels), torch.eye(10)[:, None, :]
    assert encoder(x, labels[:1, 0].expand(5, 10)).shape == (5, 6)
    assert encoder(x, labels).shape == (10, 5, 6)
    assert decoder(torch.randn(2, 5, 3), labels[:1]).shape == (2, 5, 2 * pixels)


def test_an_enumerated_label_runs_the_image_part_once_and_matches_one_label_at_a_time():
    torch.manual_seed(0)
    encoder = ConvEncoder((1, 12, 12), (4, 8), out_dim=3, condition_dim=10)
    x, labels = torch.rand(4, 144), torch.eye(10)
    together = encoder(x, labels[:, None, :])
    for digit in range(10):
        assert torch.allclose(together[digit], encoder(x, labels[digit].expand(4, 10)), atol=1e-6)


@pytest.mark.parametrize("network", ["mlp", "conv"])
@pytest.mark.parametrize("changes", [
    {}, {"conditional": True}, {"conditional": True, "label_every_layer": False},
    {"likelihood": "discretized-logistic", "mixture": 5, "image_shape": (3, 13, 17)},
    {"prior": "vamp", "pseudo_inputs": 7}, {"conditional": True, "labels": 100}, {"posterior": "iaf"},
    {"stochastic_layers": 2}, {"visible_quadrants": 2}, {"stochastic_layers": 4, "conditional": True},
    {"stochastic_layers": 2, "visible_quadrants": 2},
], ids=str)  # fmt: skip
def test_the_size_refusal_counts_exactly_the_parameters_a_run_holds(network, changes):
    """``parameter_count`` (what the refusal of oversized models reads) builds the model on the meta
    device: its count is the real model's, every piece included, with nothing allocated."""
    config = Config(network=network, conv_channels=(8, 16, 16), hidden_dims=(24, 12), z_dim=6, **changes)
    assert parameter_count(config) == sum(parameter.numel() for parameter in build_model(config).parameters())


def test_networks_too_large_are_refused_with_the_count_before_anything_is_allocated():
    config = Config(network="conv", conv_channels=(4096, 4096))  # 16 x 4096^2 weights: 1 GB of float32
    with pytest.raises(PyroVAEError, match=r"would hold [\d,]+ parameters, more than 100,000,000") as refused:
        check_size(config)
    assert int(str(refused.value).split()[4].replace(",", "")) == parameter_count(config) > 2 * 16 * 4096**2
    check_size(Config(network="conv"))  # the default conv model passes
    with pytest.raises(PyroVAEError, match="cannot be built"):  # a width past torch's sizes: refused, no traceback
        check_size(Config(z_dim=99999999999999999999))


@pytest.mark.parametrize("log_scale", [-7.0, -4.0, -1.5, 0.5], ids=lambda s: f"log_s={s}")
@pytest.mark.parametrize("mixture", [1, 4])
def test_the_256_probabilities_of_a_subpixel_sum_to_one(log_scale, mixture):
    generator = torch.Generator().manual_seed(mixture)
    locs = torch.rand(3, mixture, generator=generator, dtype=torch.float64) * 2.6 - 1.3  # inside and outside [-1, 1]
    logits = torch.randn(3, mixture, generator=generator, dtype=torch.float64)
    pixels = DiscretizedLogistic(logits, locs, torch.full_like(locs, log_scale))
    probabilities = pixels.expand((256, 3)).log_prob(LEVELS[:, None].expand(256, 3)).exp()
    assert torch.allclose(probabilities.sum(0), torch.ones(3, dtype=torch.float64), atol=1e-6)


def test_log_probability_is_the_mass_of_the_logistic_on_each_bin():
    """P(v) = F(v + 1/255) - F(v - 1/255), the edges taking the tails, F(t) = 1 / (1 + e^-(t - mu)/s),
    written here in float64 from the logistic CDF alone; the class computes it in float32."""
    locs, log_scales = torch.tensor([[-0.2], [0.7], [-1.1]]), torch.tensor([[-2.0], [-3.5], [-1.0]])
    pixels = DiscretizedLogistic(torch.zeros_like(locs), locs, log_scales)

    def cdf(t, row):
        return torch.sigmoid((t - locs[row].double()) / log_scales[row].double().exp())

    values = 2 * LEVELS - 1
    for row in range(3):
        upper = torch.where(values > 0.999, torch.ones_like(values), cdf(values + BIN_HALF_WIDTH, row))
        lower = torch.where(values < -0.999, torch.zeros_like(values), cdf(values - BIN_HALF_WIDTH, row))
        expected = torch.log(upper - lower)
        got = pixels.expand((256, 3)).log_prob(LEVELS[:, None].float().expand(256, 3))[:, row].double()
        # above e^-9 the float32 difference of two sigmoids keeps three digits; below, it loses them
        # (PixelCNN++'s density fallback takes over under 1e-5), and the sum-to-one test covers it
        kept = expected > -9
        assert kept.sum() > 20 and torch.allclose(got[kept], expected[kept], atol=1e-3)


def test_decoder_output_blocks_become_components_per_subpixel():
    """The decoder gives [logits, locations, log scales], each (components, subpixels); one
    component has no logits block."""
    config = Config(likelihood="discretized-logistic", mixture=2, image_shape=(1, 2, 2))
    output = torch.arange(3 * 2 * 4, dtype=torch.float32)[None]  # (1, 24)
    pixels = likelihood_for(config).distribution(output).base_dist
    assert pixels.logits.shape == (1, 4, 2) and pixels.locs[0, 1].tolist() == [9.0, 13.0]
    assert pixels.log_scales[0, 1].tolist() == [17.0, 21.0]
    single = likelihood_for(Config(likelihood="discretized-logistic", image_shape=(1, 2, 2))).distribution(torch.zeros(1, 8))
    assert single.base_dist.locs.shape == (1, 4, 1) and single.event_shape == (4,)


def test_samples_are_8_bit_levels_and_the_mean_is_in_range():
    pixels = DiscretizedLogistic(torch.zeros(1000, 1), torch.full((1000, 1), 0.3), torch.full((1000, 1), -2.0))
    draws = pixels.sample()
    assert torch.equal(torch.round(draws * 255), draws * 255) and 0 <= draws.min() and draws.max() <= 1
    assert abs(draws.mean().item() - 0.65) < 0.01 and torch.allclose(pixels.mean, torch.tensor(0.65))


def test_mixture_needs_the_discretized_logistic():
    with pytest.raises(Exception, match="--likelihood discretized-logistic"):
        Config(mixture=3)


# --- every piece with the conv networks, through the CLI on real data -------------------------------

SMALL = ["--network", "conv", "--conv-channels", "8,16", "--z-dim", "4", "--device", "cpu", "--quiet",
         "--no-plot", "--subset", "600"]  # fmt: skip
VARIANTS = {
    "plain": [],
    "conditional": ["--conditional"],
    "iwae-vamp": ["--objective", "iwae", "--particles", "3", "--prior", "vamp", "--pseudo-inputs", "10"],
    "iaf-two-groups": ["--posterior", "iaf", "--stochastic-layers", "2", "--elbo", "trace", "--upper-z-dims", "2"],
    "semi-supervised": ["--conditional", "--labels", "100"],
    "completion": ["--visible-quadrants", "2", "--baseline-epochs", "1", "--epochs", "2"],
    "beta-warmup": ["--beta", "0.5", "--kl-warmup", "1"],
    "logistic-mixture": ["--likelihood", "discretized-logistic", "--mixture", "3"],
    "conditional-groups-of-maps": ["--stochastic-layers", "3", "--conditional"],
    "completion-groups-of-maps": ["--visible-quadrants", "2", "--baseline-epochs", "1", "--epochs", "2",
                                  "--stochastic-layers", "2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_piece_trains_evaluates_and_samples_with_conv_networks(variant, tmp_path, data_root):
    env = {"PYRO_VAE_DATA": data_root, "PYRO_VAE_RUNS": tmp_path}
    out = tmp_path / variant
    code, _, err = run_main("train", "--out", out, "--epochs", "1", *SMALL, *VARIANTS[variant], env_extra=env)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["network"] == "conv"
    code, text, err = run_main("evaluate", out, "--k", "3", "--json", "--no-fid", "--device", "cpu", env_extra=env)
    assert code == 0, err
    figures = json.loads(text)
    assert math.isfinite(figures["log_likelihood"]) and figures["elbo"] <= figures["log_likelihood"] + 1.0
    if not variant.startswith("completion"):
        extra = ["--digit", "3"] if "--conditional" in VARIANTS[variant] else []
        code, _, err = run_main("sample", "--run", out, "--n", "4", "--out", tmp_path / "s.npy", *extra, env_extra=env)
        assert code == 0, err
        assert np.load(tmp_path / "s.npy").shape == (4, 28, 28)


@pytest.mark.slow
def test_conv_runs_resume_exactly_plot_and_fine_tune_with_a_new_piece(tmp_path, data_root):
    from test_reliability import tensors_equal

    env = {"PYRO_VAE_DATA": data_root, "PYRO_VAE_RUNS": tmp_path}
    for name, epochs in (("whole", "2"), ("halted", "1")):
        code, _, err = run_main("train", "--epochs", epochs, "--out", tmp_path / name, *SMALL, env_extra=env)
        assert code == 0, err
    code, _, err = run_main("train", "--resume", tmp_path / "halted", "--epochs", "2", "--no-plot", env_extra=env)
    assert code == 0, err
    reference, again = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("whole", "halted"))
    for key in ("model", "optimizer", "rng", "step"):
        assert tensors_equal(again[key], reference[key]), key
    code, text, err = run_main("plot", tmp_path / "whole", "--device", "cpu", env_extra=env)
    assert code == 0 and "interpolations.png" in text, err
    assert (tmp_path / "whole" / "reconstructions.png").stat().st_size > 10_000
    code, _, err = run_main("train", "--epochs", "1", "--out", tmp_path / "tuned", "--init-from", tmp_path / "whole",
                            "--prior", "vamp", "--pseudo-inputs", "10", *SMALL, env_extra=env)  # fmt: skip
    assert code == 0, err
    tuned = load_checkpoint(tmp_path / "tuned" / "checkpoint.pt")["model"]
    assert "latent_prior.pseudo_inputs" in tuned
    code, _, err = run_main("train", "--epochs", "1", "--out", tmp_path / "mlp", "--init-from", tmp_path / "whole",
                            "--device", "cpu", "--quiet", "--no-plot", "--subset", "600", env_extra=env)  # fmt: skip
    assert code == 2 and "does not match" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_colour_array_of_odd_size_gets_exact_bits_per_dimension(tmp_path, data_root):
    """A colour .npy of 13x17 images with the discretized logistic: evaluate reports bits per
    dimension as -log p(x) / (C*H*W ln 2), with no dequantized bound, and samples come back in colour."""
    generator = np.random.default_rng(0)
    ramps = np.linspace(0, 255, 17)[None, None, :, None] * generator.uniform(0.2, 1.0, (300, 1, 1, 3))
    images = (ramps + generator.integers(0, 20, (300, 13, 17, 3))).clip(0, 255).astype(np.uint8)
    np.save(tmp_path / "colour.npy", images)
    env = {"PYRO_VAE_DATA": data_root, "PYRO_VAE_RUNS": tmp_path}
    out = tmp_path / "colour-run"
    code, _, err = run_main("train", "--dataset", tmp_path / "colour.npy", "--likelihood", "discretized-logistic",
                            "--out", out, "--epochs", "10", "--batch-size", "16", *SMALL[:-2], env_extra=env)  # fmt: skip
    assert code == 0, err
    code, text, err = run_main("evaluate", out, "--k", "3", "--json", "--device", "cpu", env_extra=env)
    assert code == 0, err
    figures = json.loads(text)
    assert figures["log_likelihood_dequantized"] is None
    assert figures["bits_per_dim"] == pytest.approx(-figures["log_likelihood"] / (3 * 13 * 17 * math.log(2)))
    assert 0 < figures["bits_per_dim"] < 8  # below the uniform model's 8 bits after ten epochs
    code, _, err = run_main("sample", "--run", out, "--n", "4", "--out", tmp_path / "s.npy", env_extra=env)
    assert code == 0, err
    assert np.load(tmp_path / "s.npy").shape == (4, 13, 17, 3)


def test_conv_groups_are_maps_at_the_encoders_levels_and_both_estimators_give_one_bound():
    """--network conv with N groups: the top group at the coarsest level, one per level below, more groups
    than levels stacked at the coarsest; each group's site is its map flattened (channels x side x side);
    the mean-field and the Monte-Carlo ELBO agree over 2,000 draws."""
    from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

    from pyro_vae.conv_hierarchy import group_levels

    assert group_levels(3, 3) == [1, 2, 3] and group_levels(3, 2) == [2, 3] and group_levels(2, 4) == [1, 2, 2, 2]
    torch.manual_seed(0)
    config = Config(network="conv", conv_channels=(8, 16), stochastic_layers=3, z_dim=4, upper_z_dims=(3, 2))
    vae = build_model(config)
    with torch.no_grad():  # a trained q is not its prior
        for group in vae.downward:
            group.posterior_head[-1].weight.normal_(0, 0.1)
    x = torch.bernoulli(torch.rand(3, 784, generator=torch.Generator().manual_seed(1)))
    guide = pyro.poutine.trace(vae.guide).get_trace(x)
    sizes = {name: site["value"].shape[-1] for name, site in guide.nodes.items() if name.startswith("z_")}
    assert sizes == {"z_3": 2 * 7 * 7, "z_2": 3 * 7 * 7, "z_1": 4 * 14 * 14} and vae.latent_size == 4 * 14 * 14
    pyro.set_rng_seed(2)
    analytic = TraceMeanField_ELBO(num_particles=2000, vectorize_particles=True).loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(2)
    trace = Trace_ELBO(num_particles=2000, vectorize_particles=True).loss(vae.model, vae.guide, x)
    assert abs(analytic - trace) < 0.01 * abs(trace)
