"""The ELBO's pieces, checked against torch and Pyro: closed-form KL, the analytic-KL loss, and the
Monte-Carlo KL of Trace_ELBO. No MNIST needed: a fixed random batch of binary or grey images."""

from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import Independent, Normal, kl_divergence

from pyro_vae import VAE, Config, build_model, gaussian_kl
from pyro_vae.data import one_hot
from pyro_vae.likelihoods import reconstruction_log_likelihood, softplus
from pyro_vae.networks import elu


def small_vae(**overrides) -> VAE:
    config = Config(z_dim=5, hidden_dims=(32,), **overrides)
    torch.manual_seed(0)
    return build_model(config)


def fixed_batch(likelihood: str, size: int = 8):
    generator = torch.Generator().manual_seed(1)
    grey = torch.rand(size, 784, generator=generator)
    x = torch.bernoulli(grey, generator=generator) if likelihood == "bernoulli" else grey
    y = one_hot(torch.arange(size) % 10, 10)
    return x, y


def test_gaussian_kl_matches_torch_kl_divergence():
    generator = torch.Generator().manual_seed(0)
    z_loc = 2 * torch.randn(64, 7, generator=generator)
    z_scale = torch.rand(64, 7, generator=generator) * 3 + 0.05
    ours = gaussian_kl(z_loc, z_scale)
    reference = kl_divergence(
        Independent(Normal(z_loc, z_scale), 1), Independent(Normal(0.0, 1.0).expand([64, 7]), 1)
    )
    assert ours.shape == (64,)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_gaussian_kl_is_zero_at_the_prior_and_has_the_squared_mean():
    assert gaussian_kl(torch.zeros(3, 4), torch.ones(3, 4)).abs().max() == 0
    # mu = -1, sigma = 1: the correct term is 1/2 * mu^2 = 0.5 per dimension; a formula without the
    # square on mu would give -0.5, and one with the wrong sign -0.5 as well.
    assert gaussian_kl(-torch.ones(1, 4), torch.ones(1, 4)).item() == pytest.approx(2.0)


def test_exp_written_elu_is_torch_elu_in_value_and_gradient():
    hidden = torch.cat([torch.linspace(-90, 90, 2001), torch.tensor([0.0, -1e-8, 1e-8, -1e-3])])
    hidden = hidden.repeat(3, 1).requires_grad_()
    ours, reference = elu(hidden), torch.nn.functional.elu(hidden)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1.2e-7)
    upstream = torch.randn_like(hidden)
    (ours_grad,) = torch.autograd.grad(ours, hidden, upstream)
    (reference_grad,) = torch.autograd.grad(reference, hidden, upstream)
    torch.testing.assert_close(ours_grad, reference_grad, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(elu(hidden), reference, rtol=0, atol=1.2e-7)


def test_exp_written_softplus_is_stable_and_matches_float64():
    logits = torch.cat([torch.linspace(-200, 200, 4001), torch.tensor([0.0, 88.8, -88.8, 1e-6, -17.0])])
    exact = torch.nn.functional.softplus(logits.double(), threshold=1000)
    ours = softplus(logits)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours.double(), exact, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("likelihood", ["bernoulli", "normal", "continuous-bernoulli"])
@pytest.mark.parametrize("conditional", [False, True])
def test_hand_reconstruction_matches_pyro_log_prob(likelihood, conditional):
    vae = small_vae(likelihood=likelihood, conditional=conditional)
    x, y = fixed_batch(likelihood)
    trace = poutine.trace(poutine.condition(vae.model, data={"z": torch.randn(8, 5)})).get_trace(x, y)
    decoder_output = vae.decoder(trace.nodes["z"]["value"], vae.condition(y))
    by_hand = reconstruction_log_likelihood(x, decoder_output, vae.config)
    torch.testing.assert_close(trace.nodes["x"]["fn"].log_prob(x), by_hand, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("likelihood", ["bernoulli", "normal", "continuous-bernoulli"])
@pytest.mark.parametrize("conditional", [False, True])
def test_mean_field_loss_is_hand_reconstruction_plus_hand_kl(likelihood, conditional):
    """With the seed fixed, TraceMeanField_ELBO draws the same z as a traced guide does; its loss must
    then equal -sum_n [log p(x_n | z_n) - KL(q(z|x_n) || p(z))] computed by hand."""
    vae = small_vae(likelihood=likelihood, conditional=conditional)
    x, y = fixed_batch(likelihood)
    pyro.set_rng_seed(7)
    loss = TraceMeanField_ELBO().loss(vae.model, vae.guide, x, y)
    pyro.set_rng_seed(7)
    z = poutine.trace(vae.guide).get_trace(x, y).nodes["z"]["value"]
    condition = vae.condition(y)
    with torch.no_grad():
        q = vae.posterior(x, condition).base_dist
        z_loc, z_scale = q.loc, q.scale
        reconstruction = reconstruction_log_likelihood(x, vae.decoder(z, condition), vae.config)
        by_hand = -(reconstruction - gaussian_kl(z_loc, z_scale)).sum().item()
    assert loss == pytest.approx(by_hand, rel=1e-5)


def test_trace_elbo_monte_carlo_kl_agrees_with_closed_form_within_three_standard_errors():
    """Trace_ELBO's KL is E_q[log q(z|x) - log p(z)], estimated with one z per call. Hiding the
    observed site leaves only that term, whose sample mean must sit within 3 standard errors of the
    closed form."""
    vae = small_vae()
    x, y = fixed_batch("bernoulli")
    model_without_x = poutine.block(vae.model, hide=["x"])
    pyro.set_rng_seed(3)
    elbo = Trace_ELBO()
    estimates = torch.tensor([elbo.loss(model_without_x, vae.guide, x) for _ in range(4000)])
    with torch.no_grad():
        q = vae.posterior(x).base_dist
        closed_form = gaussian_kl(q.loc, q.scale).sum().item()
    standard_error = estimates.std().item() / math.sqrt(len(estimates))
    assert standard_error > 0
    assert abs(estimates.mean().item() - closed_form) < 3 * standard_error
    # and the analytic variant removes that noise: the same blocked model gives the closed form exactly
    assert TraceMeanField_ELBO().loss(model_without_x, vae.guide, x) == pytest.approx(closed_form, rel=1e-5)


def test_iwae_with_one_sample_is_the_trace_elbo_estimate():
    """L_1 = log p(x|z) + log p(z) - log q(z|x) for one z ~ q: with the same draws it equals
    Trace_ELBO's estimate, so `evaluate --k 1` reports an ELBO."""
    from pyro_vae.bounds import importance_weights, iwae_bound

    vae = small_vae()
    x, _ = fixed_batch("bernoulli")
    pyro.set_rng_seed(11)
    bound = iwae_bound(importance_weights(vae, x, None, k=1)[0]).sum().item()
    pyro.set_rng_seed(11)
    assert -Trace_ELBO().loss(vae.model, vae.guide, x) == pytest.approx(bound, rel=1e-5)


def test_iwae_bound_tightens_with_k_and_chunks_agree(monkeypatch):
    from pyro_vae import bounds
    from pyro_vae.bounds import importance_weights, iwae_bound

    vae = small_vae()
    x, _ = fixed_batch("bernoulli")
    pyro.set_rng_seed(0)
    one = iwae_bound(importance_weights(vae, x, None, k=1)[0]).mean()
    pyro.set_rng_seed(0)
    many = iwae_bound(importance_weights(vae, x, None, k=500)[0]).mean()
    assert many > one
    pyro.set_rng_seed(0)
    monkeypatch.setattr(bounds, "ROWS_PER_CHUNK", 8 * 7)  # 7 draws per chunk, the last one short
    log_weights, reconstructions = importance_weights(vae, x, None, k=500)
    assert log_weights.shape == reconstructions.shape == (8, 500)
    # other draws (the generator fills chunks differently), same bound to Monte-Carlo precision;
    # a chunking bug that mixed images or dropped draws would move it by far more
    torch.testing.assert_close(iwae_bound(log_weights).mean(), many, rtol=5e-4, atol=0)


@pytest.mark.parametrize("samples", [40, 400])  # fewer samples than features: singular covariances, as in small runs
def test_frechet_distance_matches_torchmetrics_general_eigensolver(samples):
    """FID by two symmetric eigensolvers equals torchmetrics' eigvals(S_1 @ S_2) form, and the moments
    are numpy's mean and unbiased covariance; the distance of a set to itself is zero; the form from
    the features themselves (an n_1 x n_2 SVD) gives the same, for sets of equal and unequal sizes."""
    from torchmetrics.image.fid import _compute_fid

    from pyro_vae.fid import feature_moments, frechet_distance_of_moments

    generator = torch.Generator().manual_seed(0)
    real = torch.relu(torch.randn(samples, 60, generator=generator) @ torch.randn(60, 60, generator=generator))
    fake = torch.relu(torch.randn(samples, 60, generator=generator) + 0.5)
    (mean_real, cov_real), (mean_fake, cov_fake) = feature_moments(real.split(7)), feature_moments([fake])
    assert torch.allclose(mean_real, real.double().mean(0)) and torch.allclose(cov_real, torch.cov(real.double().T))
    ours = frechet_distance_of_moments(mean_real, cov_real, mean_fake, cov_fake)
    theirs = _compute_fid(mean_real, cov_real, mean_fake, cov_fake).item()
    assert ours == pytest.approx(theirs, rel=1e-6) and ours > 1.0
    assert abs(frechet_distance_of_moments(mean_real, cov_real, mean_real, cov_real)) < 1e-6 * ours
    from pyro_vae.fid import frechet_distance_of_features

    assert frechet_distance_of_features(real, fake) == pytest.approx(ours, rel=1e-6)
    assert frechet_distance_of_features(real, real[: samples // 2]) == pytest.approx(
        frechet_distance_of_moments(mean_real, cov_real, *feature_moments([real[: samples // 2]])), rel=1e-6)
