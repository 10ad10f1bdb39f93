"""The top-down hierarchy on ``--network conv``: latent groups that are feature maps at several
resolutions (NVAE's scales, Vahdat & Kautz 2020), with residual convolutional cells.

The conv encoder's stride-2 convolutions give maps at levels k = 1..K (side S/2^k of the padded image,
``--conv-channels`` c_k channels). Group z_l is a map of d_l channels (``--z-dim`` for z_1,
``--upper-z-dims`` above) at level k_l: the top group at the coarsest level K, one group per level
below it, and more groups than levels stacked at the coarsest (``group_levels``). The same equations as
the fully connected hierarchy (hierarchy.py), each network a convolution:

    h_k = the encoder's activated map at level k            (bottom-up)
    s'  = s_{l+1} + C_l([s_{l+1}, z_{l+1}][, y])             (a residual cell: 3x3 conv, a, 3x3 conv)
    s_l = s' brought to level k_l by 4x4 stride-2 transposed convolutions
    p(z_l | z_>l)    = N(m_l, diag exp(2 v_l)),                  (m_l, v_l)   = P_l(a(s_l))      (3x3 conv)
    q(z_l | z_>l, x) = N(m_l + dm_l, diag exp(2 (v_l + dv_l))),  (dm_l, dv_l) = Q_l([a(s_l), h_{k_l}])

The top group's q is the run's posterior piece from the encoder's linear head over h_K, its p the
run's prior piece; the decoder reads the map z_1 (a 3x3 convolution, then transposed convolutions up
to the image). A group's value is its map flattened, so every piece that takes a vector of latents
(the priors, the evaluator, the figures) takes it unchanged.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from .errors import PyroVAEError
from .hierarchy import relative_gaussian
from .networks import ACTIVATIONS, _convolve, _label_bias, padded_side


def group_levels(levels: int, groups: int) -> list[int]:
    """The conv level (1: side S/2, ..., ``levels``: the coarsest) of z_1 .. z_N."""
    return [min(levels, group + max(0, levels - groups)) for group in range(1, groups + 1)]


def level_sides(image_shape, levels: int) -> list[tuple[int, int]]:
    """(height, width) of the maps at levels 1..K, the image zero-padded to multiples of 2^K."""
    _, height, width = image_shape
    height, width = padded_side(height, levels), padded_side(width, levels)
    return [(height >> level, width >> level) for level in range(1, levels + 1)]


def group_sizes(config) -> list[int]:
    """Each group's flattened size, d_l times its level's height and width."""
    levels = len(config.conv_channels)
    sides = level_sides(config.image_shape, levels)
    return [dim * sides[level - 1][0] * sides[level - 1][1]
            for dim, level in zip(config.group_dims, group_levels(levels, config.stochastic_layers))]  # fmt: skip


def _as_map(flat: torch.Tensor, channels: int, side: tuple[int, int]) -> torch.Tensor:
    return flat.reshape(*flat.shape[:-1], channels, *side)


def _gaussian_map(outputs: torch.Tensor, loc=0.0, log_scale=0.0) -> dist.Distribution:
    """``hierarchy.relative_gaussian`` over the flattened map, from outputs (..., 2 d, h, w)."""
    flat = [part.flatten(-3) if torch.is_tensor(part) else part for part in (*outputs.chunk(2, dim=-3), loc, log_scale)]
    return relative_gaussian(*flat)


class ConvBottomUp(nn.Module):
    """The conv encoder's maps: the top posterior's inputs from its linear head over h_K, and each
    group's features h_{k_l}. No weights of its own."""

    def __init__(self, levels: list[int]):
        super().__init__()
        self.levels = levels

    def forward(self, encoder, x: torch.Tensor, condition: torch.Tensor | None = None):
        maps = encoder.feature_maps(x, condition)
        return encoder.head(maps[-1], condition), [maps[level - 1] for level in self.levels]


class ConvTopDownGroup(nn.Module):
    """Group z_l below the top, at level k_l, drawn after z_{l+1} at level k_above >= k_l."""

    def __init__(self, level: int, above: tuple[int, int, tuple], here: tuple[int, int, tuple], channels,
                 activation: str = "elu", condition_dim: int = 0, condition_scale: float = 1.0):  # fmt: skip
        """``above`` and ``here``: (channels of the group, its conv level, its map's (h, w))."""
        super().__init__()
        (above_dim, above_level, self.above_side), (dim, here_level, self.side) = above, here
        self.level, self.dim, self.above_dim = level, dim, above_dim
        self.width = channels[above_level - 1]  # the state's channels where the cell runs
        self.condition_dim, self.condition_scale = condition_dim, condition_scale
        self.activation = ACTIVATIONS[activation]
        self.cell = nn.ModuleList([nn.Conv2d(self.width + above_dim, self.width, 3, padding=1),
                                   nn.Conv2d(self.width, self.width, 3, padding=1)])  # fmt: skip
        self.label_bias = nn.ModuleList([nn.Linear(condition_dim, self.width, bias=False)] if condition_dim else [])
        widths = [channels[level - 1] for level in range(above_level, here_level - 1, -1)]
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        here_width = channels[here_level - 1]
        self.prior_head = nn.Conv2d(here_width, 2 * dim, 3, padding=1)
        self.posterior_head = nn.ModuleList([nn.Conv2d(2 * here_width, here_width, 3, padding=1),
                                             nn.Conv2d(here_width, 2 * dim, 3, padding=1)])  # fmt: skip
        nn.init.zeros_(self.posterior_head[-1].weight)  # q starts where p is
        nn.init.zeros_(self.posterior_head[-1].bias)

    @property
    def site(self) -> str:
        return f"z_{self.level}"

    def state(self, z_above: torch.Tensor, state_above: torch.Tensor | None,
              condition: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """``s' = s_{l+1} + C_l([s_{l+1}, z_{l+1}], y)`` (y where the run reads a label), brought to this
        group's level."""
        z_map = _as_map(z_above, self.above_dim, self.above_side)
        if state_above is None:  # the state carried from the top group: s_N = 0
            state_above = z_map.new_zeros(*z_map.shape[:-3], self.width, *self.above_side)
        leading = torch.broadcast_shapes(z_map.shape[:-3], state_above.shape[:-3])
        state_above = state_above.expand(*leading, *state_above.shape[-3:])
        hidden = _convolve(self.cell[0], torch.cat([state_above, z_map.expand(*leading, *z_map.shape[-3:])], dim=-3))
        if self.condition_dim:
            if condition is None:
                raise PyroVAEError("this hierarchy's top-down path reads the label: give y")
            hidden = _label_bias(self.label_bias[0], hidden, condition * self.condition_scale)
        state = state_above + _convolve(self.cell[1], self.activation(hidden))
        for layer in self.upsample:
            state = _convolve(layer, state)
        return state

    def prior(self, state: torch.Tensor) -> dist.Distribution:
        return _gaussian_map(_convolve(self.prior_head, self.activation(state)))

    def posterior(self, state: torch.Tensor, features: torch.Tensor) -> dist.Distribution:
        hidden = self.activation(state)
        loc, log_scale = _convolve(self.prior_head, hidden).chunk(2, dim=-3)
        leading = torch.broadcast_shapes(hidden.shape[:-3], features.shape[:-3])
        joined = torch.cat([hidden.expand(*leading, *hidden.shape[-3:]), features.expand(*leading, *features.shape[-3:])], -3)
        shifts = _convolve(self.posterior_head[1], self.activation(_convolve(self.posterior_head[0], joined)))
        return _gaussian_map(shifts, loc, log_scale)


def conv_top_down_groups(config, condition_dim: int) -> list[ConvTopDownGroup]:
    """The groups below the top, in the order they are drawn: z_{N-1}, ..., z_1."""
    levels = len(config.conv_channels)
    sides, placed = level_sides(config.image_shape, levels), group_levels(levels, config.stochastic_layers)
    groups = [(dim, level, sides[level - 1]) for dim, level in zip(config.group_dims, placed)]
    return [ConvTopDownGroup(index + 1, groups[index + 1], groups[index], config.conv_channels, config.activation,
                             condition_dim, 1 / config.label_scale)
            for index in range(len(groups) - 2, -1, -1)]  # fmt: skip


class SpatialDecoder(nn.Module):
    """z_1's map (d_1, h, w) at level k_1 [, condition] -> (..., outputs * C*H*W): a 3x3 convolution to
    that level's channels, then 4x4 stride-2 transposed convolutions up to the image, cropped to H x W,
    laid out (outputs, C, H, W) as ``networks.ConvDecoder``'s. A label is a per-channel bias at every
    layer; an image condition, average-pooled to the map's side, joins z_1's channels."""

    def __init__(self, config, outputs: int, condition_dim: int = 0, condition_every_layer: bool = True,
                 condition_is_image: bool = False):  # fmt: skip
        super().__init__()
        self.image_shape = tuple(config.image_shape)
        levels = len(config.conv_channels)
        self.level = group_levels(levels, config.stochastic_layers)[0]
        self.dim, self.side = config.z_dim, level_sides(self.image_shape, levels)[self.level - 1]
        _, height, width = self.image_shape
        self.padding = (0, padded_side(width, levels) - width, 0, padded_side(height, levels) - height)
        self.condition_is_image = condition_is_image and condition_dim > 0
        colours = self.image_shape[0]
        self.activation = ACTIVATIONS[config.activation]
        channels = config.conv_channels[: self.level]
        self.first = nn.Conv2d(self.dim + colours * self.condition_is_image, channels[-1], 3, padding=1)
        widths = [*reversed(channels), outputs * colours]
        self.convs = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        labelled = condition_dim > 0 and not self.condition_is_image
        biased = len(widths) if condition_every_layer else 1
        self.label_biases = nn.ModuleList(nn.Linear(condition_dim, width, bias=False)
                                          for width in widths[:biased] if labelled)  # fmt: skip

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        hidden = _as_map(z, self.dim, self.side)
        if self.condition_is_image:
            image = nn.functional.pad(condition.reshape(*condition.shape[:-1], *self.image_shape), self.padding)
            pooled = _convolve(nn.AvgPool2d(2**self.level), image)
            leading = torch.broadcast_shapes(hidden.shape[:-3], pooled.shape[:-3])
            hidden = torch.cat([hidden.expand(*leading, *hidden.shape[-3:]), pooled.expand(*leading, *pooled.shape[-3:])], -3)
        layers = [self.first, *self.convs]
        for index, layer in enumerate(layers):
            hidden = _convolve(layer, hidden)
            if index < len(self.label_biases):
                hidden = _label_bias(self.label_biases[index], hidden, condition)
            if index < len(layers) - 1:
                hidden = self.activation(hidden)
        _, height, width = self.image_shape
        return hidden[..., :height, :width].flatten(-3)
