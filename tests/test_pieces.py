"""The model is defined once, by its pieces: swapping the prior in one place moves the ELBO, the IWAE
bound, the samples and the latent figures with it. Also the exact cases of the evaluator (uniform
and fair-coin likelihoods), broadcasting conditions, and the gradient-variance figure."""

from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyro_vae import Config, VAE
from pyro_vae.data import one_hot
from pyro_vae.bounds import bits_per_dim, importance_weights, iwae_bound, split_bounds
from pyro_vae.noise import estimator_noise
from pyro_vae.likelihoods import reconstruction_log_likelihood
from pyro_vae.networks import ConditionedMLP, concatenate, conditioned_linear
from pyro_vae.plotting import prior_quantiles
from pyro_vae.posteriors import closed_form_kl, diagonal_gaussian_kl, gaussian_kl
from pyro_vae.priors import GaussianMixture, StandardNormal
from pyro_vae.sampling import draw_prior, sample_images

Z_DIM = 3


def small_vae(**overrides) -> VAE:
    torch.manual_seed(0)
    return VAE(Config(z_dim=Z_DIM, hidden_dims=(16,), **overrides))


def binary_batch(size: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    return torch.bernoulli(torch.rand(size, 784, generator=generator), generator=generator)


def wide_prior() -> StandardNormal:
    return StandardNormal(Z_DIM, scale=2.0)  # N(0, 4I)


def mixture_prior() -> GaussianMixture:
    return GaussianMixture([0.3, 0.7], [[-2.0] * Z_DIM, [1.5] * Z_DIM], [[0.5] * Z_DIM, [1.0] * Z_DIM])


def hand_log_prior(prior, z: torch.Tensor) -> torch.Tensor:
    """log p(z) written out: a diagonal Gaussian, or log sum_c pi_c N(z; m_c, s_c^2)."""
    if isinstance(prior, StandardNormal):
        scale = prior.scale
        return (-0.5 * (z / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)).sum(-1)
    components = [
        torch.distributions.Normal(loc, scale).log_prob(z).sum(-1) + weight.log()
        for weight, loc, scale in zip(prior.logits.exp(), prior.locs, prior.scales)
    ]
    return torch.logsumexp(torch.stack(components), dim=0)


def hand_log_weight(vae, prior, x, z):
    """log p(x|z) + log p(z) - log q(z|x), without Pyro."""
    z_loc, z_log_scale = vae.encoder(x, None).chunk(2, dim=-1)
    log_q = torch.distributions.Normal(z_loc, z_log_scale.exp()).log_prob(z).sum(-1)
    return reconstruction_log_likelihood(x, vae.decoder(z, None), vae.config) + hand_log_prior(prior, z) - log_q


@pytest.mark.parametrize("make_prior", [wide_prior, mixture_prior], ids=["N(0,4I)", "mixture"])
def test_swapping_the_prior_in_one_place_moves_elbo_iwae_samples_and_figures(make_prior):
    vae, x = small_vae(), binary_batch()
    vae.latent_prior = make_prior()  # the one place
    prior = vae.latent_prior
    # the ELBO: Trace_ELBO's one-sample estimate is the hand-written log weight of the guide's draw
    pyro.set_rng_seed(3)
    loss = Trace_ELBO().loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(3)
    z = poutine.trace(vae.guide).get_trace(x).nodes["z"]["value"]
    with torch.no_grad():
        assert -loss == pytest.approx(hand_log_weight(vae, prior, x, z).sum().item(), rel=1e-5)
        # the IWAE bound: the evaluator's weights are the hand-written ones for the same draws
        pyro.set_rng_seed(4)
        log_weights, _ = importance_weights(vae, x, None, k=7)  # one chunk of 7 particles
        pyro.set_rng_seed(4)
        with pyro.plate("particles", 7, dim=-2):
            draws = poutine.trace(vae.guide).get_trace(x).nodes["z"]["value"]
        hand = hand_log_weight(vae, prior, x, draws)
    assert log_weights.shape == (6, 7) and draws.shape == (7, 6, Z_DIM)
    torch.testing.assert_close(log_weights, hand.T, rtol=1e-5, atol=1e-4)
    # samples: z ~ the new prior
    generator_draws = draw_prior(vae, 20_000, torch.Generator().manual_seed(0))
    mean = generator_draws.mean(0)
    expected_mean = torch.zeros(Z_DIM) if isinstance(prior, StandardNormal) else 0.3 * -2.0 + 0.7 * 1.5
    torch.testing.assert_close(mean, expected_mean * torch.ones(Z_DIM), atol=0.05, rtol=0)
    images = sample_images(vae, n=5, seed=9)[0]
    z_drawn = draw_prior(vae, 5, torch.Generator().manual_seed(9))
    torch.testing.assert_close(images, vae.decode_mean(z_drawn).reshape(5, 28, 28))
    # the manifold figure's grid: the new prior's marginal quantiles
    quantiles = torch.tensor([0.05, 0.5, 0.95])
    grid = prior_quantiles(vae, quantiles)
    reference = torch.quantile(generator_draws, quantiles, dim=0)
    torch.testing.assert_close(grid, reference, atol=0.06, rtol=0)


def test_closed_form_kl_follows_a_gaussian_prior_and_steps_aside_for_a_mixture():
    vae, x = small_vae(), binary_batch()
    q = vae.posterior(x)
    torch.testing.assert_close(closed_form_kl(q, vae.prior((6,))), gaussian_kl(q.base_dist.loc, q.base_dist.scale))
    vae.latent_prior = wide_prior()
    by_hand = diagonal_gaussian_kl(q.base_dist.loc, q.base_dist.scale, torch.zeros(Z_DIM), 2 * torch.ones(Z_DIM))
    torch.testing.assert_close(closed_form_kl(q, vae.prior((6,))), by_hand)
    blocked = poutine.block(vae.model, hide=["x"])
    assert TraceMeanField_ELBO().loss(blocked, vae.guide, x) == pytest.approx(by_hand.sum().item(), rel=1e-5)
    vae.latent_prior = mixture_prior()
    assert closed_form_kl(q, vae.prior((6,))) is None


def test_bits_per_dim_exact_cases_through_the_evaluator():
    """A decoder that outputs logit 0 and an encoder that outputs q = p = N(0, I) make every weight
    p(x|z) exactly: Bernoulli(0.5) gives log P = -784 log 2, one bit per pixel; the continuous
    Bernoulli at lambda = 0.5 is the uniform density, 0 nats, so 8 bits per 8-bit pixel."""
    for likelihood, dequantized, expected_nats, expected_bits in (
        ("bernoulli", False, -784 * math.log(2), 1.0),
        ("continuous-bernoulli", True, 0.0, 8.0),
    ):
        vae = small_vae(likelihood=likelihood)
        with torch.no_grad():
            for network in (vae.encoder, vae.decoder):
                for parameter in network.parameters():
                    parameter.zero_()
        images = binary_batch(8) if likelihood == "bernoulli" else torch.rand(8, 784)
        bounds, reconstruction, kl, _ = split_bounds(vae, images, torch.zeros(8, dtype=torch.int64), 5, 4)
        torch.testing.assert_close(bounds, torch.full((8,), expected_nats), atol=2e-3, rtol=0)
        assert kl == 0
        assert bits_per_dim(bounds.mean().item(), dequantized, pixels=784) == pytest.approx(expected_bits, abs=1e-5)


def test_networks_broadcast_a_condition_over_particle_dimensions():
    torch.manual_seed(0)
    network = ConditionedMLP(4, (8,), 3, condition_dim=10)
    inputs = torch.randn(5, 6, 4)  # 5 particles of 6 images
    condition = one_hot(torch.arange(6) % 10, 10)
    together = network(inputs, condition)
    assert together.shape == (5, 6, 3)
    for particle in range(5):
        torch.testing.assert_close(together[particle], network(inputs[particle], condition))
    labels = one_hot(torch.arange(10), 10).reshape(10, 1, 10).expand(10, 6, 10)  # every label, enumerated
    assert network(inputs[0], labels).shape == (10, 6, 3)


def test_a_conditioned_layer_is_the_linear_map_of_the_concatenation():
    """W [h; c] + b computed as W_h h + (W_c c + b), broadcasting (n, h) images against (10, 1, 10)
    enumerated labels, equals the layer applied to the materialized concatenation."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(7 + 10, 5)
    hidden, labels = torch.randn(6, 7), 30 * one_hot(torch.arange(10), 10).reshape(10, 1, 10)
    split = conditioned_linear(layer, hidden, labels)
    assert split.shape == (10, 6, 5)
    torch.testing.assert_close(split, layer(concatenate(hidden, labels)), rtol=1e-5, atol=1e-5)


def test_iwae_bound_of_a_conditional_vae_uses_its_labels():
    vae, x = small_vae(conditional=True), binary_batch()
    y = one_hot(torch.arange(6), 10)
    pyro.set_rng_seed(1)
    log_weights, _ = importance_weights(vae, x, y, k=50)
    pyro.set_rng_seed(1)
    other, _ = importance_weights(vae, x, one_hot((torch.arange(6) + 1) % 10, 10), k=50)
    assert log_weights.shape == (6, 50) and not torch.allclose(iwae_bound(log_weights), iwae_bound(other))


def test_gradient_variance_is_zero_for_the_closed_form_kl_and_positive_for_its_estimate():
    """With the observed site hidden, TraceMeanField_ELBO's loss is the closed-form KL, the same
    for every draw, so its gradient has no variance; Trace_ELBO's Monte-Carlo KL does."""
    vae, x = small_vae(), binary_batch()
    blocked = poutine.block(vae.model, hide=["x"])
    parameters = list(vae.encoder.parameters())
    analytic_spread, analytic, analytic_se = estimator_noise(blocked, vae.guide, parameters, x, None, TraceMeanField_ELBO(), 50)
    trace_spread, trace, trace_se = estimator_noise(blocked, vae.guide, parameters, x, None, Trace_ELBO(), 200)
    assert analytic == pytest.approx(0, abs=1e-10) and analytic_se == pytest.approx(0, abs=1e-10)
    assert analytic_spread == pytest.approx(0, abs=1e-6) and trace_spread > 0
    assert trace > 3 * trace_se > 0


def test_estimator_noise_is_the_formulas_over_the_draws_it_made(monkeypatch):
    """The losses' standard deviation per image, V = 1/(R-1) sum_r ||g_r - mean(g)||^2 and its standard
    error, from losses and gradients taken by hand with the same draws; the float64 centring a block of parameters at a time (blocks of 100 here, so the
    encoder's parameters span many) changes nothing but the order of the sums."""
    from pyro_vae import noise

    vae, x = small_vae(), binary_batch()
    parameters = list(vae.parameters())
    monkeypatch.setattr(noise, "GRADIENT_BLOCK", 100)
    pyro.set_rng_seed(5)
    spread, variance, stderr = estimator_noise(vae.model, vae.guide, parameters, x, None, Trace_ELBO(), 20)
    pyro.set_rng_seed(5)
    by_hand, losses = [], []
    for _ in range(20):
        for parameter in parameters:
            parameter.grad = None
        losses.append(Trace_ELBO().loss_and_grads(vae.model, vae.guide, x, None))
        by_hand.append((torch.cat([parameter.grad.reshape(-1) for parameter in parameters]) / x.shape[0]).double())
    stacked = torch.stack(by_hand)
    deviations = (stacked - stacked.mean(0)).square().sum(1) * 20 / 19
    assert variance == pytest.approx(deviations.mean().item(), rel=1e-9)
    assert stderr == pytest.approx((deviations.std() / 20**0.5).item(), rel=1e-9)
    assert spread == pytest.approx((torch.tensor(losses, dtype=torch.float64) / x.shape[0]).std().item(), rel=1e-9)
