"""Image completion (Sohn et al. 2015): the quadrants of Pyro's example, a likelihood that scores the
hidden pixels only, a baseline trained first and then frozen, the evaluator's weights written out by
hand, and a real run on MNIST through the CLI that completes digits better than its baseline."""

from __future__ import annotations

import json
import math

import pyro
import pyro.poutine as poutine
import pytest
import torch

from pyro_vae import CompletionCVAE, Config
from pyro_vae.completion import visible_mask
from pyro_vae.sources.named import MNIST_SHAPE
from pyro_vae.bounds import importance_weights
from pyro_vae.inference import make_svi
from pyro_vae.priors import ConditionalPrior


def small_completion(visible_quadrants: int = 2, **overrides) -> CompletionCVAE:
    torch.manual_seed(0)
    pyro.clear_param_store()
    return CompletionCVAE(Config(z_dim=4, hidden_dims=(32,), visible_quadrants=visible_quadrants, **overrides))


def binary_batch(size: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    return torch.bernoulli(torch.rand(size, 784, generator=generator), generator=generator)


def test_visible_quadrants_are_those_of_pyros_example():
    """1: bottom-left; 2: the left half; 3: all but the bottom-right (examples/cvae/mnist.py)."""
    image = lambda visible: visible_mask(visible, MNIST_SHAPE).reshape(28, 28)  # noqa: E731
    assert image(1)[14:, :14].all() and image(1).sum() == 196
    assert image(2)[:, :14].all() and image(2).sum() == 392
    assert image(3)[:14, :].all() and image(3)[14:, :14].all() and not image(3)[14:, 14:].any()
    assert image(3).sum() == 588


def test_quadrants_of_a_colour_image_cover_every_channel():
    mask = visible_mask(2, (3, 30, 20)).reshape(3, 30, 20)
    assert mask[:, :, :10].all() and not mask[:, :, 10:].any()
    odd = visible_mask(1, (1, 7, 5)).reshape(7, 5)  # an odd side's middle row goes to the bottom half
    assert odd[3:, :2].all() and odd.sum() == 4 * 2


def test_likelihood_scores_only_the_hidden_pixels():
    vae, x = small_completion(), binary_batch()
    hidden = ~visible_mask(2, MNIST_SHAPE)
    z = torch.randn(6, 4)
    condition = vae.condition(None, x)
    log_p = vae.likelihood(z, condition).log_prob(x)
    logits = vae.decoder(z, condition)
    by_hand = ((x * logits - torch.nn.functional.softplus(logits)) * hidden).sum(-1)
    assert torch.allclose(log_p, by_hand, atol=1e-4)
    flipped = torch.where(hidden, x, 1 - x)  # other visible pixels, same hidden ones
    assert torch.allclose(vae.likelihood(z, condition).log_prob(flipped), log_p)


def test_condition_is_the_visible_pixels_and_the_baselines_guess():
    vae, x = small_completion(1), binary_batch()
    visible = visible_mask(1, MNIST_SHAPE)
    condition = vae.condition(None, x)
    assert torch.equal(condition[:, visible], x[:, visible])
    guess = torch.sigmoid(vae.task.baseline(x * visible))
    assert torch.allclose(condition[:, ~visible], guess[:, ~visible])
    # the baseline reads only the visible pixels
    assert torch.equal(vae.condition(None, torch.where(visible, x, 1 - x)), condition)


def test_baseline_trains_alone_first_then_stays_frozen():
    """Steps up to baseline_epochs * steps_per_epoch move the baseline only; later steps move
    everything but the baseline."""
    vae, x = small_completion(baseline_epochs=1, epochs=2, batch_size=6), binary_batch()
    svi = make_svi(vae, vae.config, train_images=6)  # one step per epoch
    baseline = {name for name, _ in vae.named_parameters() if name.startswith("completion.")}
    assert baseline

    def moved_by(step):
        before = {name: p.detach().clone() for name, p in vae.named_parameters()}
        svi.step(step, x, None)
        return {name for name, p in vae.named_parameters() if not torch.equal(before[name], p)}

    assert moved_by(1) == baseline
    later = moved_by(2)
    assert later and not later & baseline
    assert set(dict(vae.named_parameters())) == baseline | later


def test_prior_network_is_never_surer_than_its_floor():
    """sigma_p >= MIN_SCALE even for conditions far from any image (the outlier that broke a run)."""
    vae = small_completion()
    extreme = torch.cat([torch.zeros(3, 784), torch.ones(3, 784), 50 * torch.randn(3, 784)])
    prior = vae.prior((9,), extreme)
    assert prior.batch_shape == (9,) and prior.event_shape == (4,)
    assert (prior.base_dist.scale >= ConditionalPrior.MIN_SCALE).all()


def test_baseline_nll_is_the_masked_bernoulli_negative_log_likelihood():
    vae, x = small_completion(3), binary_batch()
    hidden = ~visible_mask(3, MNIST_SHAPE)
    probabilities = torch.sigmoid(vae.task.baseline_outputs(x)).double()
    by_hand = -(x * probabilities.log() + (1 - x) * (1 - probabilities).log())[:, hidden].sum(-1)
    assert torch.allclose(vae.task.baseline_nll(x).double(), by_hand, atol=1e-3)


def test_importance_weights_are_the_conditional_joint_over_the_recognition_density():
    """log w = log p(z | c) + log p(x_hidden | z, c) - log q(z | x, c), from the pieces by hand, on
    the same draws: the evaluator's bound is log p(x_hidden | x_visible)."""
    vae, x = small_completion(1), binary_batch()
    pyro.set_rng_seed(3)
    log_weights, _ = importance_weights(vae, x, None, k=5)
    pyro.set_rng_seed(3)
    with pyro.plate("particles", 5, dim=-2):
        z = poutine.trace(vae.guide).get_trace(x).nodes["z"]["value"]  # the evaluator's draws
    condition = vae.condition(None, x)
    by_hand = (vae.prior((5, 6), condition).log_prob(z) + vae.likelihood(z, condition).log_prob(x)
               - vae.posterior(x, condition).log_prob(z))  # fmt: skip
    assert z.shape == (5, 6, 4)
    assert torch.allclose(log_weights, by_hand.T, atol=1e-4)


def test_pyros_tutorial_figures_score_grey_targets_by_hand():
    """Pyro's tutorial's metric on grey images: Trace_ELBO(num_particles=10) averages 10 draws of
    log p(z|c) + sum_{i hidden} [x_i log s_i + (1 - x_i) log(1 - s_i)] - log q(z|x,c), and the
    baseline's cross-entropy, both per image, written out by hand on the same draws."""
    from pyro_vae.completion import grey_target_losses
    from pyro_vae.data import Split

    vae = small_completion(1)
    grey = torch.rand(6, 784, generator=torch.Generator().manual_seed(4))
    pyro.set_rng_seed(8)
    cvae, baseline = grey_target_losses(vae, Split(grey, torch.zeros(6, dtype=torch.int64)), particles=10)
    hidden = ~visible_mask(1, MNIST_SHAPE)
    pyro.set_rng_seed(8)
    with torch.no_grad():
        condition = vae.condition(None, grey)
        q_z = vae.posterior(grey, condition)
        bounds = []
        for _ in range(10):
            z = q_z.rsample()
            probabilities = torch.sigmoid(vae.decoder(z, condition))
            cross_entropy = (grey * probabilities.log() + (1 - grey) * (1 - probabilities).log())[:, hidden].sum(-1)
            bounds.append(vae.prior((6,), condition).log_prob(z) + cross_entropy - q_z.log_prob(z))
        guess = torch.sigmoid(vae.task.baseline_outputs(grey))
        baseline_by_hand = -(grey * guess.log() + (1 - grey) * (1 - guess).log())[:, hidden].sum(-1).mean()
    assert cvae == pytest.approx(-torch.stack(bounds).mean().item(), rel=1e-4)
    assert baseline == pytest.approx(baseline_by_hand.item(), rel=1e-4)


@pytest.mark.slow
def test_completion_run_beats_its_baseline_resumes_evaluates_and_completes(tmp_path, data_root):
    """A real run through the CLI: two visible quadrants, small networks, one baseline epoch and
    two CVAE epochs. The CVAE's conditional NLL is below the baseline's, the run resumes bit for
    bit (the switch from baseline to CVAE goes by the global step, which the checkpoint keeps), and
    evaluate, complete and plot work."""
    from conftest import run_here

    common = ["--visible-quadrants", "2", "--baseline-epochs", "1", "--z-dim", "8", "--hidden-dims", "128",
              "--device", "cpu", "--quiet", "--no-plot", "--data-dir", str(data_root)]  # fmt: skip
    whole = run_here("train", *common, "--epochs", "3", "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    assert "train baseline" in whole.stdout and "baseline test nll" in whole.stdout
    split = run_here("train", *common, "--epochs", "2", "--out", tmp_path / "one")
    assert split.returncode == 0, split.stderr
    resumed = run_here("train", "--resume", tmp_path / "one", "--epochs", "3", "--quiet", "--no-plot")
    assert resumed.returncode == 0, resumed.stderr
    one = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)["model"]
    whole_weights = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(one[name], whole_weights[name]) for name in whole_weights)

    evaluated = run_here("evaluate", tmp_path / "whole", "--k", "10", "--device", "cpu", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["visible_quadrants"] == 2 and result["fid"] is None
    assert result["cvae_nll"] == pytest.approx(-result["log_likelihood"])
    assert result["cvae_nll"] < result["baseline_nll"] - 2, result
    # Two hidden quadrants: 392 of the 784 pixels are scored, and bits per dimension count those.
    assert result["bits_per_dim"] == pytest.approx(result["cvae_nll"] / (392 * math.log(2)))
    # Pyro's tutorial's figures, on grey targets: finite, and the CVAE below its baseline there too.
    assert 0 < result["cvae_neg_elbo_grey"] < result["baseline_nll_grey"], result
    assert abs(result["kl_difference"]) < 1e-3
    metrics = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert math.isclose(result["baseline_nll"], metrics[-1]["test_baseline_nll"], rel_tol=1e-5)

    complete = run_here("complete", "--run", tmp_path / "whole", "--n", "3", "--draws", "4", "--device", "cpu",
                       "--out", tmp_path / "c.png")  # fmt: skip
    assert complete.returncode == 0 and (tmp_path / "c.png").stat().st_size > 1000, complete.stderr
    default = run_here("complete", "--run", tmp_path / "whole", "--device", "cpu", cwd=tmp_path)
    assert default.returncode == 0 and (tmp_path / "completion.png").exists(), default.stderr
    plot = run_here("plot", tmp_path / "whole", "--device", "cpu")
    assert plot.returncode == 0 and "completion.png" in plot.stdout, plot.stderr
    sample = run_here("sample", "--run", tmp_path / "whole", "--out", tmp_path / "s.png", "--device", "cpu")
    assert sample.returncode == 2 and "pyro-vae complete" in sample.stderr
