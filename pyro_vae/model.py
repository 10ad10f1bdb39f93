"""The VAE: three pieces as distributions, and the Pyro ``model`` and ``guide`` written from them.

Generative model, for each image n (the plate ``data``):

    z_n ~ p(z)                                        (``VAE.prior``: priors.py, site "z")
    x_n ~ p(x | z_n[, y_n])                            (``VAE.likelihood``: likelihoods.py, site "x")

Amortized guide:

    z_n ~ q(z | x_n[, y_n])                            (``VAE.posterior``: posteriors.py, site "z")

Semi-supervised (``--labels``, Kingma et al. 2014, M2), y is a latent variable where its label is hidden:

    model:  y_n ~ p(y) = Cat(1/10, ..., 1/10) (site "y", observed where the label is kept),
            z_n ~ p(z),  x_n ~ p(x | z_n, y_n)
    guide:  y_n ~ q(y | x_n) (``VAE.classify``, only for unlabeled images),  z_n ~ q(z | x_n, y_n)

Image completion (``--visible-quadrants``, Sohn et al. 2015; completion.py), the condition c_n is the
visible part of x_n with the baseline's guess in the hidden part, and only hidden pixels are scored:

    model:  z_n ~ p(z | c_n) (the prior network),  x_n,hidden ~ p(x_hidden | z_n, c_n)
    guide:  z_n ~ q(z | x_n, c_n) (the recognition network)

SVI maximizes the evidence lower bound, per image (objectives.py)

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x).

Evaluation, sampling and the figures ask for the same three pieces, so a new prior or posterior is
written once, in its module. Every piece broadcasts over leading dimensions, so the model and guide
also run under a particle plate (the IWAE bound) with the batch shape (particles, n).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn

from .config import MAX_PARAMETERS, Config
from .errors import PyroVAEError
from .likelihoods import pixel_distribution, pixel_mean
from .completion import Completion
from .data import one_hot
from .networks import Decoder, Encoder, image_generator, image_network, last_width
from .posteriors import ConditionalGaussian, closed_form_kl, posterior_for
from .priors import prior_for


class VAE(nn.Module):
    """Encoder and decoder networks, the prior and posterior pieces, and the Pyro ``model`` and
    ``guide`` that use them.

    ``x`` is a batch of flattened images (batch, C*H*W), the shape ``config.image_shape``; ``y`` the
    one-hot labels (batch, classes), which the conditional VAE needs and the plain VAE ignores.
    """

    def __init__(self, config: Config):
        super().__init__()
        if config.pixels is None:
            raise PyroVAEError(f"the image shape of {config.dataset} is not known yet: read the data first "
                               f"(pyro_vae.data.load_data) and record it as config.image_shape")  # fmt: skip
        self.config = config
        pixels, classes = config.pixels, config.num_classes
        if (config.conditional or config.labels is not None) and not classes:
            raise PyroVAEError(f"--conditional needs a source with classes; {config.dataset} has no labels "
                               f"(a folder needs one subfolder per class, an .npz a 'labels' array)")  # fmt: skip
        completion = config.visible_quadrants is not None
        condition_dim = classes if config.conditional else pixels if completion else 0
        shared = dict(
            condition_dim=condition_dim,
            # an image condition enters each network's first layer only: C*H*W more inputs per layer
            # would triple the networks for what the first layer can already pass on
            condition_every_layer=config.label_every_layer and not completion,
            condition_is_image=completion,
        )
        self.latent_posterior = posterior_for(config)
        self.encoder = Encoder(image_network(config, self.latent_posterior.encoder_outputs(), **shared))
        self.decoder = Decoder(image_generator(config, config.z_dim, config.decoder_outputs, **shared))
        two_layers = config.stochastic_layers == 2
        top_dim = config.top_z_dim if two_layers else config.z_dim
        self.latent_prior = prior_for(config, top_dim)
        # Two stochastic layers: p(z1 | z2) downward in the model, q(z2 | z1) upward in the guide, their
        # hidden layers half as wide as the last layer of the run's own network.
        hidden = max(1, last_width(config) // 2)
        self.downward = nn.ModuleList([ConditionalGaussian(top_dim, hidden, config.z_dim)] if two_layers else [])
        self.upward = nn.ModuleList([ConditionalGaussian(config.z_dim, hidden, top_dim)] if two_layers else [])
        self.top_site = "z_top" if two_layers else "z"
        # Semi-supervised: the classifier q(y | x), a network of the encoder's kind and size.
        semi_supervised = config.labels is not None
        self.classifier = nn.ModuleList([Encoder(image_network(config, classes))] if semi_supervised else [])
        # Image completion: the visible mask and the baseline network.
        self.completion = nn.ModuleList(
            [Completion(config.visible_quadrants, config.image_shape, config.hidden_dims, config.activation)] if completion else []
        )

    # --- the pieces ------------------------------------------------------------------------------------

    def prior(self, batch_shape: tuple[int, ...], condition: torch.Tensor | None = None) -> dist.Distribution:
        """p(z) of the top latent, batch shape ``batch_shape``, event shape (its dimensions,); for
        image completion p(z | c), ``condition`` being ``VAE.condition(y, x)``."""
        return self.latent_prior(tuple(batch_shape), self._encode_top, condition)

    def posterior(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> dist.Distribution:
        """q(z | x[, y]) from the encoder; ``condition`` is ``VAE.condition(y)``."""
        return self.latent_posterior(self.encoder(x, condition))

    def likelihood(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> dist.Distribution:
        """p(x | z[, y]) from the decoder, one factor per pixel (for image completion, per hidden
        pixel: the visible ones are masked out); batch shape z's leading shape."""
        hidden = self.completion[0].hidden.bool() if self.completion else None
        return pixel_distribution(self.decoder(z, condition), self.config, mask=hidden)

    def label_prior(self, batch_shape: tuple[int, ...]) -> dist.Distribution:
        """p(y): uniform over the classes, one-hot valued (the networks read y as a one-hot vector)."""
        return dist.OneHotCategorical(logits=self._uniform_logits().expand(*batch_shape, self.config.num_classes))

    def classify(self, x: torch.Tensor) -> dist.Distribution:
        """q(y | x) = Cat(softmax(f(x))), the semi-supervised model's classifier."""
        return dist.OneHotCategorical(logits=self.classifier[0](x))

    def _uniform_logits(self) -> torch.Tensor:
        return next(self.decoder.parameters()).new_zeros(self.config.num_classes)

    def _encode_top(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dist.Distribution:
        """q(top latent | x[, y]) for the VampPrior's pseudo-inputs, y the one-hot of class indices
        ``labels``: q(z|x, y), or with two layers q(z2 | z1 = E[z1|x])."""
        q = self.posterior(x, self.condition(self.one_hot(labels)) if labels is not None else None)
        for layer in self.upward:
            q = layer(_mean(q))
        return q

    def one_hot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Class indices -> the one-hot vectors y the networks read (None passes through)."""
        return None if labels is None else one_hot(labels, self.config.num_classes)

    def condition(self, y: torch.Tensor | None, x: torch.Tensor | None = None) -> torch.Tensor | None:
        """What the networks see of the label: ``label_scale * y``, or None for the plain VAE; for
        image completion, the visible pixels of ``x`` with the baseline's guess for the rest.

        The scale is a design choice, not a constant of the model: a larger input makes the label's
        weights learn faster than the encoder can hide the class in z (see README)."""
        if self.completion:
            return self.completion[0].condition(x)
        if not self.config.conditional:
            return None
        if y is None:
            raise PyroVAEError("the conditional VAE needs the one-hot labels y")
        return self.config.label_scale * y

    # --- Pyro's model and guide --------------------------------------------------------------------

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, kl_scale: float = 1.0):
        """p(x, z | y) = p(z) p(x | z, y), or with two layers p(z2) p(z1 | z2) p(x | z1);
        ``kl_scale`` weighs the latent sites (objectives.py)."""
        pyro.module("decoder", self.decoder)
        # A completion run's baseline is not registered here: it is frozen once the CVAE trains, and
        # pyro.infer.SVI would step every parameter the model registers, moving a frozen one on its
        # Adam momentum (SVI zeroes gradients rather than dropping them); its own steps register it.
        self._register("latent_prior", "downward")
        with pyro.plate("data", x.shape[0]):
            if self.classifier:  # semi-supervised: y is a latent variable, observed where given
                y = pyro.sample("y", self.label_prior((x.shape[0],)), obs=y)
            condition = self.condition(y, x)
            with poutine.scale(scale=kl_scale):
                z = pyro.sample(self.top_site, self.prior((x.shape[0],), condition))
                for layer in self.downward:
                    z = pyro.sample("z", layer(z))
            pyro.sample("x", self.likelihood(z, condition), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, kl_scale: float = 1.0):
        """q(z | x, y), or with two layers q(z1 | x) q(z2 | z1); z reparametrized; the same
        ``kl_scale`` as the model's latent sites."""
        pyro.module("encoder", self.encoder)
        self._register("latent_posterior", "upward", "classifier")
        with pyro.plate("data", x.shape[0]):
            if self.classifier and y is None:  # an unlabeled image: y drawn, or summed (objectives.py)
                y = pyro.sample("y", self.classify(x))
            with poutine.scale(scale=kl_scale):
                z = pyro.sample("z", self.posterior(x, self.condition(y, x)))
                for layer in self.upward:
                    pyro.sample("z_top", layer(z))

    def _register(self, *pieces: str) -> None:
        """Pieces with learned parameters (a VampPrior's pseudo-inputs, a flow, a second layer) join
        Pyro's parameter store under their own names; the standard normal prior and Gaussian q have
        none, so a one-layer default VAE registers exactly its encoder and decoder."""
        for piece in pieces:
            module = getattr(self, piece)
            if any(True for _ in module.parameters()):
                pyro.module(piece, module)

    def closed_form_kl(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | None:
        """KL(q(z|x) || p(z)) per image by hand where one exists (one layer, Gaussian q and p, y known)."""
        if self.downward or (self.classifier and y is None):
            return None
        condition = self.condition(y, x)
        return closed_form_kl(self.posterior(x, condition), self.prior((x.shape[0],), condition))

    # --- what the figures and sampling use -----------------------------------------------------------

    @torch.no_grad()
    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E_q[z | x, y], the point a figure encodes an image to."""
        return _mean(self.posterior(x, self.condition(y, x)))

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, y] in [0, 1], the likelihood's mean (see ``likelihoods.pixel_mean``)."""
        return pixel_mean(self.decoder(z, self.condition(y)), self.config)


def parameter_count(config: Config) -> int:
    """Weights and biases of every network and piece the run would hold, exactly: the model is built on
    torch's meta device, which records shapes and allocates nothing, so no arithmetic here restates
    the networks'."""
    try:
        with torch.device("meta"):
            return sum(parameter.numel() for parameter in VAE(config).parameters())
    except (TypeError, RuntimeError, OverflowError) as error:  # a width past torch's int64 sizes
        raise PyroVAEError(f"the networks of this configuration cannot be built ({str(error).splitlines()[0]}); "
                           f"choose smaller --hidden-dims, --conv-channels or --z-dim") from None


def check_size(config: Config) -> None:
    """Refuse, before anything is allocated, a model larger than ``MAX_PARAMETERS`` (surely a typo);
    a run whose image shape is not yet known is checked once the data has told it."""
    if config.pixels is None:
        return
    count = parameter_count(config)
    if count > MAX_PARAMETERS:
        raise PyroVAEError(f"the networks would hold {count:,} parameters, more than {MAX_PARAMETERS:,}; choose "
                           f"smaller --hidden-dims, --conv-channels or --z-dim")  # fmt: skip


def _mean(distribution: dist.Distribution) -> torch.Tensor:
    """The mean, or for a flow (no closed-form mean) the flow applied to its base's mean."""
    if isinstance(distribution, dist.TransformedDistribution):
        value = distribution.base_dist.mean
        for transform in distribution.transforms:
            value = transform(value)
        return value
    return distribution.mean
