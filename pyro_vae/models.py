"""The model a configuration asks for, one class per task, and its size before it is built.

    --visible-quadrants N  ->  completion.CompletionCVAE   (p(x_hidden | x_visible), Sohn et al. 2015)
    --labels N             ->  m2.SemiSupervisedVAE        (M2, Kingma et al. 2014)
    otherwise              ->  model.VAE                   (the VAE, or with --conditional the CVAE)
"""

from __future__ import annotations

import torch

from .completion import CompletionCVAE
from .config import MAX_PARAMETERS, Config
from .errors import PyroVAEError
from .m2 import SemiSupervisedVAE
from .model import VAE


def model_class(config: Config) -> type[VAE]:
    if config.visible_quadrants is not None:
        return CompletionCVAE
    if config.labels is not None:
        return SemiSupervisedVAE
    return VAE


def build_model(config: Config) -> VAE:
    """A fresh model of the class ``config``'s task needs, on the current default device."""
    return model_class(config)(config)


def parameter_count(config: Config) -> int:
    """Weights and biases of every network and piece the run would hold, exactly: the model is built on
    torch's meta device, which records shapes and allocates nothing, so no arithmetic here restates
    the networks'."""
    try:
        with torch.device("meta"):
            return sum(parameter.numel() for parameter in build_model(config).parameters())
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
