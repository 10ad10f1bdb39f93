"""The encoder and decoder networks: an MLP, or strided convolutions (``--network conv``).

Both kinds take an optional condition (the one-hot digit label of the conditional VAE). The condition is
concatenated to the input *and* to every hidden layer's input: a decoder that sees the label only once,
at its input, learns early in training to read the class from z instead, and z ~ N(0, I) then draws
whatever digit that region of latent space holds. Giving every layer the label directly (scaled by
``Config.label_scale``, see ``VAE.condition``) makes y the cheapest route to the class (README, "Why
the conditional VAE draws the digit you ask for").

The convolutional networks (``ConvEncoder``, ``ConvDecoder``) are sized from the image shape (C, H, W):
each of the ``--conv-channels`` widths is a 4x4 convolution of stride 2 that halves the side, the image
zero-padded at the bottom and right to a multiple of 2^layers and the decoder's output cropped back. A
label enters a convolution as a per-channel bias, W_c y broadcast over the feature map, the counterpart
of ``conditioned_linear``: one-hot planes concatenated as extra input channels would give the same
function away from the borders (where zero padding cuts the planes) at the cost of a convolution over
them, and an enumerated label (10, 1, classes) would multiply the image's convolutions by ten, where
a bias leaves them at once per image. An image condition (the visible part, for image completion)
enters the encoder's first convolution as C more input channels.
"""

from __future__ import annotations

import math

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

    @property
    def output_layer(self) -> str:
        """The name of the last layer, whose outputs a new piece may add to (``--init-from``)."""
        return f"layers.{len(self.layers) - 1}"

    def forward(self, inputs: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        hidden = inputs
        for index, (layer, conditioned) in enumerate(zip(self.layers, self.conditioned)):
            hidden = conditioned_linear(layer, hidden, condition) if conditioned else layer(hidden)
            if index < len(self.layers) - 1:
                hidden = self.activation(hidden)
        return hidden


def _convolve(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """A 2-D (transposed) convolution over (..., channels, H, W): the leading dimensions (particles,
    enumerated labels) fold into the batch and come back."""
    leading = hidden.shape[:-3]
    out = layer(hidden.reshape(-1, *hidden.shape[-3:]))
    return out.reshape(*leading, *out.shape[-3:])


def _label_bias(layer: nn.Linear, hidden: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """hidden (..., channels, H, W) + W_c y, one bias per channel; leading shapes broadcast, so the
    image part of an enumerated label's (10, 1, ...) runs once."""
    return hidden + layer(condition)[..., None, None]


def padded_side(side: int, layers: int) -> int:
    """The side rounded up to a multiple of 2^layers, so that every stride-2 layer halves it exactly."""
    return math.ceil(side / 2**layers) * 2**layers


class ConvEncoder(nn.Module):
    """x (..., C*H*W) [, condition] -> (..., out_dim): one 4x4 stride-2 convolution per width of
    ``channels``, each halving the side, then a linear layer over the last feature map.

    A vector condition (the scaled one-hot label) is a per-channel bias at every convolution and joins
    the linear layer's input (only the first convolution with ``condition_every_layer`` False); with
    ``condition_is_image`` the condition is an image of x's shape and enters the first convolution
    as C more input channels."""

    output_layer = "out"  # the layer whose outputs a new piece may add to (``--init-from``)

    def __init__(self, image_shape, channels: tuple[int, ...], out_dim: int, condition_dim: int = 0,
                 condition_every_layer: bool = True, activation: str = "elu", condition_is_image: bool = False):  # fmt: skip
        super().__init__()
        self.image_shape = tuple(image_shape)
        colours, height, width = self.image_shape
        depth = len(channels)
        self.padding = (0, padded_side(width, depth) - width, 0, padded_side(height, depth) - height)
        self.activation = ACTIVATIONS[activation]
        self.condition_is_image = condition_is_image and condition_dim > 0
        widths = [colours * (2 if self.condition_is_image else 1), *channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        labelled = condition_dim > 0 and not self.condition_is_image
        biased = len(channels) if condition_every_layer else 1
        self.label_biases = nn.ModuleList(
            nn.Linear(condition_dim, width, bias=False) for width in channels[:biased] if labelled
        )
        feature_map = channels[-1] * (padded_side(height, depth) >> depth) * (padded_side(width, depth) >> depth)
        self.linear_conditioned = labelled and condition_every_layer
        self.out = nn.Linear(feature_map + condition_dim * self.linear_conditioned, out_dim)

    def image(self, flat: torch.Tensor) -> torch.Tensor:
        """(..., C*H*W) -> (..., C, H', W'), zero-padded to the sides the strides need."""
        return nn.functional.pad(flat.reshape(*flat.shape[:-1], *self.image_shape), self.padding)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.feature_maps(x, condition)[-1], condition)

    def feature_maps(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The activated map after each convolution, (..., channels_k, H'/2^k, W'/2^k) for k = 1..K."""
        hidden = self.image(x)
        if self.condition_is_image:
            leading = torch.broadcast_shapes(x.shape[:-1], condition.shape[:-1])
            hidden = torch.cat([hidden.expand(*leading, *hidden.shape[-3:]),
                                self.image(condition).expand(*leading, *hidden.shape[-3:])], dim=-3)  # fmt: skip
        maps = []
        for index, conv in enumerate(self.convs):
            hidden = _convolve(conv, hidden)
            if index < len(self.label_biases):
                hidden = _label_bias(self.label_biases[index], hidden, condition)
            hidden = self.activation(hidden)
            maps.append(hidden)
        return maps

    def head(self, last_map: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """The linear layer over the last map (and the label, where it reads one)."""
        features = last_map.flatten(-3)
        if self.linear_conditioned:
            return conditioned_linear(self.out, features, condition)
        return self.out(features)


class ConvDecoder(nn.Module):
    """z (..., z_dim) [, condition] -> (..., outputs * C*H*W): a linear layer to the smallest feature
    map, then 4x4 stride-2 transposed convolutions doubling the side through reversed ``channels``,
    the last to ``outputs`` * C channels, cropped to H x W. The output is laid out (outputs, C, H, W):
    each of the likelihood's parameters is one block of C*H*W, as from the MLP.

    A condition joins the linear layer's input (an image condition, flattened, only there); a vector
    condition is also a per-channel bias at every transposed convolution."""

    def __init__(self, z_dim: int, channels: tuple[int, ...], image_shape, outputs: int = 1, condition_dim: int = 0,
                 condition_every_layer: bool = True, activation: str = "elu", condition_is_image: bool = False):  # fmt: skip
        super().__init__()
        self.image_shape = tuple(image_shape)
        colours, height, width = self.image_shape
        depth = len(channels)
        self.smallest = (channels[-1], padded_side(height, depth) >> depth, padded_side(width, depth) >> depth)
        self.activation = ACTIVATIONS[activation]
        self.first = nn.Linear(z_dim + condition_dim, math.prod(self.smallest))
        self.conditioned = condition_dim > 0
        widths = [*reversed(channels), outputs * colours]
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:])
        )
        labelled = condition_dim > 0 and not condition_is_image and condition_every_layer
        self.label_biases = nn.ModuleList(
            nn.Linear(condition_dim, width, bias=False) for width in widths[1:] if labelled
        )

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        hidden = conditioned_linear(self.first, z, condition) if self.conditioned else self.first(z)
        hidden = self.activation(hidden).reshape(*hidden.shape[:-1], *self.smallest)
        for index, conv in enumerate(self.convs):
            hidden = _convolve(conv, hidden)
            if self.label_biases:
                hidden = _label_bias(self.label_biases[index], hidden, condition)
            if index < len(self.convs) - 1:
                hidden = self.activation(hidden)
        _, height, width = self.image_shape
        return hidden[..., :height, :width].flatten(-3)


def last_width(config) -> int:
    """The width of the last hidden layer of the run's network: the MLP's last hidden width, or the
    channels of the last convolution."""
    return config.conv_channels[-1] if config.network == "conv" else config.hidden_dims[-1]


def image_network(config, out_dim: int, condition_dim: int = 0, condition_every_layer: bool = True,
                  condition_is_image: bool = False) -> nn.Module:  # fmt: skip
    """x (..., C*H*W) [, condition] -> (..., out_dim), the kind ``config.network`` names, sized from
    ``config.image_shape``: the encoder, the classifier q(y|x), the completion prior network."""
    if config.network == "conv":
        return ConvEncoder(config.image_shape, config.conv_channels, out_dim, condition_dim, condition_every_layer,
                           config.activation, condition_is_image)  # fmt: skip
    return ConditionedMLP(config.pixels, config.hidden_dims, out_dim, condition_dim, condition_every_layer,
                          config.activation)  # fmt: skip


def image_generator(config, z_dim: int, outputs: int = 1, condition_dim: int = 0, condition_every_layer: bool = True,
                    condition_is_image: bool = False) -> nn.Module:  # fmt: skip
    """z (..., z_dim) [, condition] -> (..., outputs * C*H*W), ``outputs`` numbers per subpixel
    (the likelihood's parameters, each a block of C*H*W): the decoder."""
    if config.network == "conv":
        return ConvDecoder(z_dim, config.conv_channels, config.image_shape, outputs, condition_dim,
                           condition_every_layer, config.activation, condition_is_image)  # fmt: skip
    return ConditionedMLP(z_dim, tuple(reversed(config.hidden_dims)), outputs * config.pixels, condition_dim,
                          condition_every_layer, config.activation)  # fmt: skip


class Encoder(nn.Module):
    """x[, y] -> the numbers the posterior piece reads (for a Gaussian q: mu and log sigma); ``net``
    from ``image_network``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x, condition)


class Decoder(nn.Module):
    """z[, y] -> the likelihood's parameters, each a block of C*H*W (for a Bernoulli: one logit per
    pixel); ``net`` from ``image_generator``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z, condition)
