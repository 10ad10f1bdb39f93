"""The pieces compose: what was once refused trains, evaluates and samples (or completes) through the
CLI on real MNIST, and each new bound is the equation it names, checked by hand on a small model."""

from __future__ import annotations

import json
import math

import pyro
import pytest
import torch
from conftest import run_here
from pyro.infer import Trace_ELBO

from pyro_vae import Config, PyroVAEError, build_model
from pyro_vae.data import balanced_labels, one_hot
from pyro_vae.objectives import IWAE, LabelsImportanceWeighted, elbo_estimator, make_objective, particle_log_weights


def small(**overrides):
    torch.manual_seed(0)
    pyro.clear_param_store()
    return build_model(Config(z_dim=4, hidden_dims=(32,), **overrides))


def binary_batch(size: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    return torch.bernoulli(torch.rand(size, 784, generator=generator), generator=generator)


def test_labels_enumerated_inside_the_importance_weights_by_hand():
    """M2 under --objective iwae: log (1/K) sum_k sum_y p(x, y, z_ky) / q(z_ky | x, y), the draws for
    each class from q(z | x, y); the same numbers, class by class, from the model's own densities."""
    vae, x = small(labels=20), binary_batch(3)
    pyro.set_rng_seed(5)
    bound = -LabelsImportanceWeighted(4, 10).differentiable_loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(5)
    pairs, labels = x.repeat(10, 1), one_hot(torch.arange(10).repeat_interleave(3), 10)
    log_weights, _ = particle_log_weights(vae.model, vae.guide, 4, pairs, labels)  # (4, 30), same draws
    by_hand = 0.0
    for image in range(3):
        terms = torch.stack([log_weights[:, label * 3 + image] for label in range(10)])  # (10, 4)
        by_hand += torch.logsumexp(terms.reshape(-1), 0) - math.log(4)
    assert bound.item() == pytest.approx(by_hand.item(), rel=1e-5)
    # each class's term is log p(y) + log p(z) + log p(x|z,y) - log q(z|x,y): p(y) = 1/10 appears once
    with torch.no_grad():
        z = torch.zeros(1, 4)
        y = one_hot(torch.tensor([7]), 10)
        condition = vae.condition(y)
        joint = (math.log(0.1) + vae.prior((1,)).log_prob(z) + vae.likelihood(z, condition).log_prob(x[:1])
                 - vae.posterior(x[:1], condition).log_prob(z))  # fmt: skip
    assert torch.isfinite(joint).all()


def test_the_iwae_weight_carries_the_kl_weight_and_is_l_k_at_one():
    """--objective iwae with --beta/--kl-warmup: log w = log p(x|z) + beta (log p(z) - log q(z|x)),
    Pyro's scaled sites, on the same draws as the unscaled weights; at beta 1 exactly L_K."""
    vae, x = small(), binary_batch()
    pyro.set_rng_seed(1)
    log_w, sites = particle_log_weights(vae.model, vae.guide, 5, x)
    log_q = sites["x"] + sites["z"] - log_w
    pyro.set_rng_seed(1)
    scaled, _ = particle_log_weights(vae.model, vae.guide, 5, x, kl_scale=0.25)
    assert torch.allclose(scaled, sites["x"] + 0.25 * (sites["z"] - log_q), atol=1e-3)
    objective = make_objective(Config(objective="iwae", particles=5, kl_warmup=2), steps_per_epoch=10)
    assert objective.kl_scale(5) == 0.25 and objective.kl_scale(40) == 1.0
    pyro.set_rng_seed(1)
    at_one = IWAE(5).differentiable_loss(vae.model, vae.guide, x, kl_scale=1.0)
    assert at_one.item() == pytest.approx(-(torch.logsumexp(log_w, 0) - math.log(5)).sum().item(), rel=1e-6)


def test_the_elbo_with_particles_is_the_mean_of_one_particle_estimates():
    """--particles K with --objective elbo: Pyro's vectorized num_particles, the mean of K estimates;
    its spread over repeats shrinks about as 1/sqrt(K)."""
    vae, x = small(), binary_batch()
    one, many = elbo_estimator("trace"), elbo_estimator("trace", 16)
    assert isinstance(many, Trace_ELBO) and many.num_particles == 16 and many.vectorize_particles
    singles = torch.tensor([one.loss(vae.model, vae.guide, x) for _ in range(200)])
    means = torch.tensor([many.loss(vae.model, vae.guide, x) for _ in range(50)])
    assert means.mean().item() == pytest.approx(singles.mean().item(), rel=0.02)
    assert 2.5 < (singles.std() / means.std()).item() < 6.5  # sqrt(16) = 4


def test_labels_not_a_multiple_of_the_classes_take_one_more_of_the_first_classes():
    labels = torch.arange(1000) % 10
    chosen = balanced_labels(labels, 105, seed=0, num_classes=10)
    assert torch.bincount(labels[chosen], minlength=10).tolist() == [11] * 5 + [10] * 5
    # a multiple of the classes chooses exactly what it chose before (the committed M2 runs' labels)
    assert torch.equal(balanced_labels(labels, 100, seed=0, num_classes=10)[:3], _old_balanced(labels, 100)[:3])
    with pytest.raises(PyroVAEError, match="class 0"):
        balanced_labels(labels, 1010, seed=0, num_classes=10)


def _old_balanced(labels, count):
    generator = torch.Generator().manual_seed(0)
    chosen = []
    for digit in range(10):
        members = (labels == digit).nonzero().squeeze(1)
        chosen.append(members[torch.randperm(len(members), generator=generator)[: count // 10]])
    return torch.cat(chosen).sort().values


COMPLETION = ["--visible-quadrants", "2", "--epochs", "2", "--baseline-epochs", "1"]


@pytest.mark.slow
@pytest.mark.parametrize("combination", [
    ["--labels", "100", "--objective", "iwae", "--particles", "2"],
    ["--labels", "105", "--no-fast"],
    ["--stochastic-layers", "3", "--conditional", "--free-bits", "0.5"],
    ["--labels", "100", "--stochastic-layers", "2"],
    ["--objective", "iwae", "--particles", "3", "--kl-warmup", "1", "--beta", "0.5"],
    ["--particles", "4", "--prior", "vamp", "--pseudo-inputs", "20"],
    [*COMPLETION, "--likelihood", "normal"],
    [*COMPLETION, "--likelihood", "continuous-bernoulli"],
    [*COMPLETION, "--likelihood", "discretized-logistic", "--mixture", "2"],
    [*COMPLETION, "--posterior", "iaf"],
    [*COMPLETION, "--stochastic-layers", "2", "--no-fast"],
], ids=" ".join)  # fmt: skip
def test_once_refused_now_trains_evaluates_and_samples(combination, tmp_path, data_root):
    """Each through the CLI on 1,000 real MNIST digits: train, evaluate (the bound above the ELBO,
    both finite), then sample a digit, or for a completion model complete test digits."""
    env = {"PYRO_VAE_DATA": str(data_root), "PYRO_VAE_RUNS": str(tmp_path / "runs")}
    epochs = [] if "--epochs" in combination else ["--epochs", "1"]
    trained = run_here("train", *combination, *epochs, "--subset", "1000", "--hidden-dims", "32", "--z-dim", "4",
                       "--device", "cpu", "--quiet", "--no-plot", "--out", tmp_path / "run", env_extra=env)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    evaluated = run_here("evaluate", tmp_path / "run", "--k", "5", "--no-fid", "--json", "--device", "cpu", env_extra=env)
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert math.isfinite(figures["elbo"]) and figures["elbo"] < figures["log_likelihood"]
    if "--visible-quadrants" in combination:
        assert math.isfinite(figures["cvae_nll"]) and math.isfinite(figures["baseline_nll"])
        assert figures["bits_per_dim"] > 0  # of the hidden 8-bit subpixels, whatever the likelihood
        made = run_here("complete", "--run", tmp_path / "run", "--n", "2", "--draws", "2", "--out", tmp_path / "c.png",
                        env_extra=env)  # fmt: skip
    else:
        digit = ["--digit", "3"] if "--labels" in combination or "--conditional" in combination else []
        made = run_here("sample", "--run", tmp_path / "run", *digit, "--n", "4", "--out", tmp_path / "s.npy",
                        env_extra=env)  # fmt: skip
    assert made.returncode == 0, made.stderr


def test_each_likelihood_piece_says_what_it_scores_and_the_model_asks_it():
    """The likelihood is an object: its data kind, its decoder outputs, its distribution and mean; the
    model, the completion baseline, the data's binarization and the evaluator all read the piece."""
    from pyro_vae.likelihoods import likelihood_for

    kinds = {name: likelihood_for(Config(likelihood=name)) for name in
             ("bernoulli", "normal", "continuous-bernoulli", "discretized-logistic")}  # fmt: skip
    assert {name: piece.data for name, piece in kinds.items()} == {
        "bernoulli": "binarized", "normal": "grey", "continuous-bernoulli": "grey", "discretized-logistic": "8-bit"}
    assert [piece.discrete for piece in kinds.values()] == [True, False, False, True]
    assert likelihood_for(Config(likelihood="discretized-logistic", mixture=3)).decoder_outputs == 9
    assert Config(likelihood="discretized-logistic", mixture=3).decoder_outputs == 9  # the config asks the piece
    outputs = torch.randn(2, 784 * 9)
    vae = small(likelihood="discretized-logistic", mixture=3)
    assert vae.decoder(torch.zeros(1, 4)).shape[-1] == 784 * 9
    piece = vae.observation
    x = torch.randint(0, 256, (2, 784)).float() / 255
    assert torch.allclose(piece.distribution(outputs).log_prob(x), piece.log_likelihood(x, outputs), atol=1e-3)
    assert piece.mean(outputs).shape == (2, 784) and 0 <= piece.mean(outputs).min() <= piece.mean(outputs).max() <= 1
    completion = small(likelihood="normal", visible_quadrants=2, epochs=5)
    assert completion.task.baseline_outputs(torch.rand(3, 784)).shape == (3, 784)


def test_style_rows_share_z2_and_noise_when_the_layers_read_the_label():
    """The style figure of a conditional two-layer model: z1 ~ p(z1 | z2, y) per class from the same z2
    and the same noise (one generator seed for every row), so a row's z1 is what p(z1 | z2, y) makes of
    the shared draw; without label-reading layers every row holds the same z."""
    from pyro_vae.sampling import draw_prior, style_latents

    vae = small(stochastic_layers=2, conditional=True, upper_z_dims=(3,))
    assert all(group.condition_dim == 10 for group in vae.downward)
    y = one_hot(torch.arange(10).repeat_interleave(4), 10)
    z = style_latents(vae, 4, y, torch.Generator().manual_seed(0))
    assert z.shape == (40, 4) and not torch.allclose(z[:4], z[4:8])
    seed = int(torch.randint(2**31 - 1, (1,), generator=torch.Generator().manual_seed(0)))
    row_three = draw_prior(vae, 4, torch.Generator().manual_seed(seed), vae.condition(y[12:16]))
    assert torch.equal(z[12:16], row_three)
    plain = small(stochastic_layers=2, upper_z_dims=(3,))
    z = style_latents(plain, 4, y, torch.Generator().manual_seed(0))
    assert torch.equal(z[:4], z[36:])
    with pytest.raises(PyroVAEError, match="reads the label"):
        vae.downward[0].state(torch.zeros(2, 3), None)
