"""The top-down hierarchy of latent groups (``--stochastic-layers N``, N >= 2): the structure of the
Ladder VAE (Sonderby et al. 2016), the ResNet VAE with IAF (Kingma et al. 2016), NVAE (Vahdat & Kautz
2020) and VDVAE (Child 2021), here with fully connected cells on whatever network the run has.

Groups z_1 (the one the decoder reads) ... z_N (the top). A deterministic bottom-up pass gives
features of x at every level,

    h_1 = a(encoder(x[, y])),    h_{l+1} = a(U_l h_l),

and both the model and the guide walk down from the top along one deterministic top-down state s_l,
which carries every group drawn above l (s_N = 0; y enters it in a conditional run):

    s_l = s_{l+1} + T_l([z_{l+1}, s_{l+1}[, y]])
    p(z_l | z_>l)    = N(m_l, diag exp(2 v_l)),                 (m_l, v_l)   = P_l(a(s_l))
    q(z_l | z_>l, x) = N(m_l + dm_l, diag exp(2 (v_l + dv_l))),  (dm_l, dv_l) = Q_l([a(s_l), h_l])

The top group is the run's own prior and posterior pieces: p(z_N) is N(0, I) or the VampPrior, q(z_N | x)
a Gaussian or an IAF from h_N; and x ~ p(x | z_1[, y]). The posterior of group l is written relative
to its prior (NVAE's residual form), so a group that the data does not need starts at q = p and
KL = 0. Because the guide draws in the model's order (z_N first) and every group's q and p are
diagonal Gaussians given the groups above, each KL(q(z_l | z_>l, x) || p(z_l | z_>l)) has a closed
form given the draws above: ``--elbo analytic`` (TraceMeanField_ELBO) serves any depth.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from .errors import PyroVAEError
from .networks import ACTIVATIONS, ConditionedMLP, concatenate

# The groups' log-scales are held within +-12 (scales from 6e-6 to 1.6e5): at initialization a
# conditional encoder puts its output far out (the label enters it at scale 30), and an unbounded
# exp(log s) overflowed the first step's loss to NaN (the two-layer model of 2026-12-07, seeds 1 and 2).
LOG_SCALE_LIMIT = 12.0


def relative_gaussian(shift: torch.Tensor, log_scale_shift: torch.Tensor, loc=0.0, log_scale=0.0) -> dist.Distribution:
    """N(loc + shift, diag exp(log_scale + log_scale_shift)^2) over the last dimension, the log-scale
    clamped to +-LOG_SCALE_LIMIT: a group's prior (loc = log_scale = 0) or its posterior relative to it."""
    total_log_scale = (log_scale + log_scale_shift).clamp(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT)
    return dist.Normal(loc + shift, total_log_scale.exp()).to_event(1)


def _gaussian(outputs: torch.Tensor, dim: int, loc=0.0, log_scale=0.0) -> dist.Distribution:
    """``relative_gaussian`` from outputs (..., 2 dim) = [shift, log-scale shift]."""
    return relative_gaussian(*outputs.split([dim, dim], dim=-1), loc, log_scale)


class BottomUp(nn.Module):
    """h_1 = a(encoded), h_{l+1} = a(U_l h_l) for the N levels, and the numbers the top group's
    posterior piece reads from h_N."""

    def __init__(self, width: int, levels: int, top_outputs: int, activation: str):
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(levels - 1))
        self.top = nn.Linear(width, top_outputs)

    def forward(self, encoder, x: torch.Tensor, condition: torch.Tensor | None = None):
        """(the top posterior's inputs, [h_1, ..., h_N]), ``encoder`` the run's encoder network."""
        features = [self.activation(encoder(x, condition))]
        for layer in self.layers:
            features.append(self.activation(layer(features[-1])))
        return self.top(features[-1]), features


class TopDownGroup(nn.Module):
    """One group z_l below the top: the state update T_l, the prior head P_l and the posterior head
    Q_l. ``level`` is l (its site is ``z_l``). A label (``condition_dim`` > 0) enters T_l, read as the
    one-hot y itself (``condition_scale`` 1 / label_scale): small networks that read it at the label's
    scale of 30 diverged (the two-layer model of 2026-12-07: test ELBO -16,000 to -1.7 million nats
    after two epochs of 3,000 digits, four seeds; reading y, -215 to -218)."""

    def __init__(self, level: int, above_dim: int, width: int, dim: int, activation: str = "elu",
                 condition_dim: int = 0, condition_scale: float = 1.0):  # fmt: skip
        super().__init__()
        self.level, self.dim, self.width = level, dim, width
        self.condition_dim, self.condition_scale = condition_dim, condition_scale
        self.activation = ACTIVATIONS[activation]
        self.step = ConditionedMLP(above_dim + width, (width,), width, condition_dim=condition_dim, activation=activation)
        self.prior_head = nn.Linear(width, 2 * dim)
        self.posterior_head = ConditionedMLP(2 * width, (width,), 2 * dim, activation=activation)
        # q starts where p is: the posterior's shift and log-scale shift start at zero
        nn.init.zeros_(self.posterior_head.layers[-1].weight)
        nn.init.zeros_(self.posterior_head.layers[-1].bias)

    @property
    def site(self) -> str:
        return f"z_{self.level}"

    def state(self, z_above: torch.Tensor, state_above: torch.Tensor | None,
              condition: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """s_l = s_{l+1} + T_l([z_{l+1}, s_{l+1}[, y]]), s_N = 0."""
        if state_above is None:
            state_above = z_above.new_zeros(*z_above.shape[:-1], self.width)
        if self.condition_dim and condition is None:
            raise PyroVAEError("this hierarchy's top-down path reads the label: give y")
        label = condition * self.condition_scale if self.condition_dim else None
        return state_above + self.step(concatenate(z_above, state_above), label)

    def prior(self, state: torch.Tensor) -> dist.Distribution:
        """p(z_l | z_>l) = N(m_l, diag exp(2 v_l))."""
        return _gaussian(self.prior_head(self.activation(state)), self.dim)

    def posterior(self, state: torch.Tensor, features: torch.Tensor) -> dist.Distribution:
        """q(z_l | z_>l, x), relative to p(z_l | z_>l): N(m_l + dm_l, diag exp(2 (v_l + dv_l)))."""
        hidden = self.activation(state)
        loc, log_scale = self.prior_head(hidden).split([self.dim, self.dim], dim=-1)
        return _gaussian(self.posterior_head(concatenate(hidden, features)), self.dim, loc, log_scale)


def top_down_groups(config, dims: tuple[int, ...], width: int, condition_dim: int) -> list[TopDownGroup]:
    """The groups below the top, in the order they are drawn: z_{N-1}, ..., z_1."""
    scale = 1 / config.label_scale
    return [TopDownGroup(level, dims[level], width, dims[level - 1], config.activation, condition_dim, scale)
            for level in range(len(dims) - 1, 0, -1)]  # fmt: skip
