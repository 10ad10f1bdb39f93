"""The semi-supervised VAE, M2 of Kingma, Rezende, Mohamed & Welling (2014), as in Pyro's
``ss_vae_M2`` example: the label y is a latent variable, observed where it is kept (``--labels N``).

    model:  y_n ~ p(y) = Cat(1/C, ..., 1/C)   (site "y", observed where the label is kept),
            z_n ~ p(z),   x_n ~ p(x | z_n, y_n)
    guide:  y_n ~ q(y | x_n) = Cat(softmax(f(x_n)))   (only for unlabeled images),
            z_n ~ q(z | x_n, y_n)

The prior, the posterior, the likelihood and the networks are the conditional VAE's (model.py); this
class adds the classifier q(y | x), a network of the encoder's kind and size, and the site "y". How
an unlabeled image's y is summed out, and the classifier's own term, are objectives.py's.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .config import Config
from .errors import PyroVAEError
from .model import VAE
from .networks import Encoder, image_network


class SemiSupervisedVAE(VAE):
    """M2: the conditional VAE's networks and pieces, y a latent site, and the classifier q(y | x)."""

    def __init__(self, config: Config):
        if not config.num_classes:
            raise PyroVAEError(f"--labels needs a source with classes; {config.dataset} has no labels")
        super().__init__(config, condition_dim=config.num_classes)
        # a one-element list: the checkpoint keys (classifier.0.*) of every M2 run saved so far
        self.classifier = nn.ModuleList([Encoder(image_network(config, config.num_classes))])

    @property
    def reads_labels(self) -> bool:
        """Its training split is its unlabeled images, and it is scored as log p(x): no labels given."""
        return False

    def condition(self, y: torch.Tensor | None, x: torch.Tensor | None = None) -> torch.Tensor | None:
        if y is None:
            raise PyroVAEError("the semi-supervised model needs y, observed or drawn from q(y | x)")
        return self.config.label_scale * y

    def label_prior(self, batch_shape: tuple[int, ...]) -> dist.Distribution:
        """p(y): uniform over the classes, one-hot valued (the networks read y as a one-hot vector)."""
        logits = next(self.decoder.parameters()).new_zeros(self.config.num_classes)
        return dist.OneHotCategorical(logits=logits.expand(*batch_shape, self.config.num_classes))

    def classify(self, x: torch.Tensor) -> dist.Distribution:
        """q(y | x) = Cat(softmax(f(x)))."""
        return dist.OneHotCategorical(logits=self.classifier[0](x))

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, kl_scale: float = 1.0):
        """p(x, y, z) = p(y) p(z) p(x | z, y), y observed where given."""
        self._register_model()
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", self.label_prior((x.shape[0],)), obs=y)
            self._generate(x, self.condition(y), kl_scale)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, kl_scale: float = 1.0):
        """q(y | x) q(z | x, y) for an unlabeled image (y drawn, or summed: objectives.py), q(z | x, y)
        for a labeled one."""
        self._register_guide()
        self._register("classifier")
        with pyro.plate("data", x.shape[0]):
            if y is None:
                y = pyro.sample("y", self.classify(x))
            self._infer(x, self.condition(y), kl_scale)

    def closed_form_kl(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | None:
        """KL(q(z|x,y) || p(z)) by hand for a known y; None with y hidden (q(y|x) is no Gaussian)."""
        return None if y is None else super().closed_form_kl(x, y)

    @torch.no_grad()
    def posterior_parameters(self, x: torch.Tensor, y: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(E_q, sd_q) of every group given y, or with y hidden those of the model's own mixture
        q(z | x) = sum_y q(y|x) q(z | x, y): the mean sum_y q(y|x) m_y and the standard deviation
        sqrt(sum_y q(y|x) (s_y^2 + m_y^2) - mean^2), one encoder pass over the (classes * n) pairs."""
        if y is not None:
            return super().posterior_parameters(x, y)
        classes, n = self.config.num_classes, x.shape[0]
        labels = torch.arange(classes, device=x.device).repeat_interleave(n)
        pairs = x.repeat(classes, *[1] * (x.dim() - 1))
        probabilities = self.classify(x).probs
        mixtures = []
        for means, scales in super().posterior_parameters(pairs, self.one_hot(labels)):
            means, scales = means.reshape(classes, n, -1), scales.reshape(classes, n, -1)
            mean = torch.einsum("nc,cnd->nd", probabilities, means)
            second_moment = torch.einsum("nc,cnd->nd", probabilities, scales**2 + means**2)
            mixtures.append((mean, (second_moment - mean**2).clamp_min(0).sqrt()))
        return mixtures
