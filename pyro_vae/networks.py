"""The encoder and decoder MLPs.

Both take an optional condition (the one-hot digit label of the conditional VAE). The condition is
concatenated to the input *and* to every hidden layer's input: a decoder that sees the label only once,
at its input, learns early in training to read the class from z instead, and z ~ N(0, I) then draws
whatever digit that region of latent space holds. Giving every layer the label directly (scaled by
``Config.label_scale``, see ``VAE.condition``) makes y the cheapest route to the class (README, "Why
the conditional VAE draws the digit you ask for").
"""

from __future__ import annotations

import torch
from torch import nn


class _ExpELU(torch.autograd.Function):
    """ELU through exp: forward exp(min(h, 0)) - 1 + relu(h), backward torch's own elu_backward."""

    @staticmethod
    def forward(ctx, hidden):
        activated = torch.exp(hidden.clamp(max=0)).sub_(1).add_(nn.functional.relu(hidden))
        ctx.save_for_backward(activated)
        return activated

    @staticmethod
    def backward(ctx, grad_activated):
        (activated,) = ctx.saved_tensors
        # d ELU/dh = 1 where the output is positive, else exp(h) = ELU(h) + 1
        return torch.ops.aten.elu_backward(grad_activated, 1.0, 1.0, 1.0, True, activated)


def elu(hidden: torch.Tensor) -> torch.Tensor:
    """ELU(h) = h for h > 0, exp(h) - 1 otherwise (Clevert et al. 2015).

    On CPU torch computes ELU with a scalar expm1, about 5 ns a value on these cores against 0.5 ns
    for its vectorized exp, so an ELU cost nearly as much as the 512x512 layer before it. Written
    with exp it is the same function to float32 rounding (tests/test_math.py): 0.9 against 4.4 ns a
    value forward, 2.4 against 5.5 forward and backward (bench/kernels.py). CUDA's one fused kernel
    stays."""
    if hidden.device.type != "cpu":
        return nn.functional.elu(hidden)
    return _ExpELU.apply(hidden)


ACTIVATIONS = {
    "elu": elu,
    "relu": nn.functional.relu,
    "gelu": nn.functional.gelu,
    "tanh": torch.tanh,
    "softplus": nn.functional.softplus,
}


def concatenate(hidden: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """[hidden, condition] along the last dimension, the leading dimensions broadcast: a condition
    (n, 10) joins hidden units (k, n, h) of k particles, and hidden units (n, h) join conditions
    (10, n, 10) of an enumerated label."""
    leading = torch.broadcast_shapes(hidden.shape[:-1], condition.shape[:-1])
    return torch.cat([hidden.expand(*leading, -1), condition.expand(*leading, -1)], dim=-1)


def conditioned_linear(layer: nn.Linear, hidden: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """``layer(concatenate(hidden, condition))`` without building the concatenation:

        W [h; c] + b = W_h h + (W_c c + b),

    each product over its own leading shape, then broadcast. For the semi-supervised model's
    enumerated label, images (n, D) against labels (10, 1, 10), the image part runs once instead
    of once per label: the encoder's widest product shrinks tenfold."""
    width = hidden.shape[-1]
    return nn.functional.linear(hidden, layer.weight[:, :width]) + nn.functional.linear(
        condition, layer.weight[:, width:], layer.bias
    )


class ConditionedMLP(nn.Module):
    """x -> Linear -> activation -> ... -> Linear, with ``condition`` concatenated to the input of
    every layer (or only the first, when ``condition_every_layer`` is False)."""

    def __init__(
        self,
        in_dim: int,
        hidden_dims: tuple[int, ...],
        out_dim: int,
        condition_dim: int = 0,
        condition_every_layer: bool = True,
        activation: str = "elu",
    ):
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        widths = [in_dim, *hidden_dims, out_dim]
        self.conditioned = [
            condition_dim > 0 and (condition_every_layer or index == 0) for index in range(len(widths) - 1)
        ]
        self.layers = nn.ModuleList(
            nn.Linear(width_in + condition_dim * conditioned, width_out)
            for width_in, width_out, conditioned in zip(widths[:-1], widths[1:], self.conditioned)
        )

    def forward(self, inputs: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        hidden = inputs
        for index, (layer, conditioned) in enumerate(zip(self.layers, self.conditioned)):
            hidden = conditioned_linear(layer, hidden, condition) if conditioned else layer(hidden)
            if index < len(self.layers) - 1:
                hidden = self.activation(hidden)
        return hidden


class Encoder(nn.Module):
    """x[, y] -> the numbers the posterior piece reads (for a Gaussian q: mu and log sigma)."""

    def __init__(self, x_dim, hidden_dims, out_dim, condition_dim=0, condition_every_layer=True, activation="elu"):
        super().__init__()
        self.net = ConditionedMLP(x_dim, hidden_dims, out_dim, condition_dim, condition_every_layer, activation)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x, condition)


class Decoder(nn.Module):
    """z[, y] -> one logit per pixel; the likelihood turns it into its parameters."""

    def __init__(self, z_dim, hidden_dims, x_dim, condition_dim=0, condition_every_layer=True, activation="elu"):
        super().__init__()
        self.net = ConditionedMLP(
            z_dim, tuple(reversed(hidden_dims)), x_dim, condition_dim, condition_every_layer, activation
        )

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z, condition)
