"""What an ELBO estimator's noise costs: the Monte-Carlo spread of one batch's loss under Trace_ELBO
(KL sampled) and TraceMeanField_ELBO (KL in closed form), and the total variance of their gradients,
which is what SGD feels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from .m2 import SemiSupervisedVAE
from .objectives import LabelsWeighted

if TYPE_CHECKING:  # type hints only: the model imports nothing of the evaluator
    from .model import VAE

# Gradient-variance parameters centred at a time in float64: R x 4,096 x 8 bytes, 3.3 MB for R = 100,
# stays in the cache through the passes over it. Both estimators of the default VAE: 5.5 s, of which
# the 200 backward passes are 4.4; 8.4 s at 65,536 a block; 17 s for the whole (R, P) matrix at once.
GRADIENT_BLOCK = 4096


def estimators(vae: VAE) -> dict:
    """The two ELBO estimators compared: Trace_ELBO (KL sampled) and TraceMeanField_ELBO (KL in
    closed form). A semi-supervised model is scored as it is trained on unlabeled images, y summed
    out under its own q(y|x) (``LabelsWeighted``): the test labels stay unread."""
    pair = {"trace": Trace_ELBO(), "analytic": TraceMeanField_ELBO()}
    if isinstance(vae, SemiSupervisedVAE):
        return {name: LabelsWeighted(estimator, vae.classify, vae.config.num_classes) for name, estimator in pair.items()}
    return pair


def estimator_noise(model, guide, parameters, x: torch.Tensor, y, estimator, repeats: int = 100):
    """An ELBO estimator's noise over ``repeats`` draws on one fixed batch: the standard deviation of
    its loss (nats per image), and the total variance of the per-image gradient over ``parameters``
    (all the networks') with its standard error:

        V = 1/(R-1) sum_r ||g_r - mean(g)||^2,  se(V) = std_r(R/(R-1) ||g_r - mean(g)||^2) / sqrt(R)

    The variance, not the spread of the loss's value, is what an estimator's noise costs SGD. Both
    come from the same draws: one forward pass each instead of a second set without gradients."""
    parameters = [parameter for parameter in parameters if parameter.requires_grad]
    gradients = torch.empty(repeats, sum(parameter.numel() for parameter in parameters), device=x.device)
    losses = torch.empty(repeats, dtype=torch.float64)
    with torch.enable_grad():
        for draw in range(repeats):
            for parameter in parameters:
                parameter.grad = None
            losses[draw] = estimator.loss_and_grads(model, guide, x, y)
            flat = [torch.zeros_like(p).reshape(-1) if p.grad is None else p.grad.reshape(-1) for p in parameters]
            torch.cat(flat, out=gradients[draw]).div_(x.shape[0])
    for parameter in parameters:
        parameter.grad = None
    # Centred in float64 a block of parameters at a time: the whole (R, P) matrix in float64, and
    # its centred square, would be two more copies of it (1.7 GB for the default VAE), and allocating
    # them took longer than the R backward passes.
    squared_norms = torch.zeros(repeats, dtype=torch.float64, device=x.device)
    for block in gradients.split(GRADIENT_BLOCK, dim=1):
        block = block.double()
        squared_norms += (block - block.mean(0)).square().sum(1)
    deviations = squared_norms * repeats / (repeats - 1)
    spread = (losses / x.shape[0]).std().item()
    return spread, deviations.mean().item(), (deviations.std() / math.sqrt(repeats)).item()
