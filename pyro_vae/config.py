"""One dataclass holds every hyper-parameter: the CLI fills it, the checkpoint stores it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import PyroVAEError

LIKELIHOODS = ("bernoulli", "normal", "continuous-bernoulli")
ELBOS = ("analytic", "trace")
ACTIVATIONS = ("elu", "relu", "gelu", "tanh", "softplus")
DATASETS = ("mnist", "fashion-mnist")
MAX_SEED = 2**32 - 1  # NumPy's limit; Pyro seeds NumPy too
MAX_PARAMETERS = 100_000_000  # 400 MB of weights, 1.2 GB with Adam's state: beyond it, surely a typo


@dataclass
class Config:
    # training schedule
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    # networks: encoder 784 -> hidden_dims -> z_dim, decoder z_dim -> reversed(hidden_dims) -> 784
    z_dim: int = 32
    hidden_dims: tuple[int, ...] = (512, 512)
    activation: str = "elu"  # of the hidden layers; ELU learned fastest (bench/activations.py)
    # the data: "mnist" or "fashion-mnist" (Debian's dataset-fashion-mnist, or --data-dir)
    dataset: str = "mnist"
    # the probabilistic model
    likelihood: str = "bernoulli"  # "bernoulli" (binarized pixels), "normal" or "continuous-bernoulli" (grey)
    normal_scale: float = 0.1  # fixed std of the Normal likelihood, in pixel units
    elbo: str = "analytic"  # "analytic": TraceMeanField_ELBO; "trace": Trace_ELBO (Monte-Carlo KL)
    conditional: bool = False  # one-hot digit label fed to encoder and decoder
    label_every_layer: bool = True  # conditional only: the label enters every layer, not just the input
    label_scale: float = 30.0  # conditional only: the networks see label_scale * one_hot(y)
    # start from the weights of this run directory (fine-tuning, e.g. with a lower learning rate)
    # instead of a fresh initialization; the networks must have the same shapes
    init_from: str | None = None
    # how fast: Pyro's ELBO with one foreach torch Adam and validation off in the loop (False:
    # pyro.infer.SVI with pyro.optim.Adam, validation on); the same updates (bench/throughput.py)
    fast: bool = True
    # where things run and live
    device: str = "auto"
    data_dir: str | None = None

    def __post_init__(self):
        self.hidden_dims = tuple(self.hidden_dims)
        self.validate()

    def validate(self) -> None:
        """Reject nonsense before any work is done, with a message naming the field."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise PyroVAEError(f"seed must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        positive_ints = {"epochs": self.epochs, "batch_size": self.batch_size, "z_dim": self.z_dim}
        for name, value in positive_ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise PyroVAEError(f"{name} must be a positive integer, got {value!r}")
        if not self.hidden_dims or any(
            isinstance(w, bool) or not isinstance(w, int) or w <= 0 for w in self.hidden_dims
        ):
            raise PyroVAEError(
                f"hidden_dims must be one or more positive integers, got {self.hidden_dims!r}"
            )
        for name in ("learning_rate", "normal_scale", "label_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not (0 < value < float("inf")):
                raise PyroVAEError(f"{name} must be a positive number, got {value!r}")
        if self.likelihood not in LIKELIHOODS:
            raise PyroVAEError(
                f"unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}"
            )
        if self.activation not in ACTIVATIONS:
            raise PyroVAEError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        if self.network_parameters() > MAX_PARAMETERS:
            raise PyroVAEError(
                f"the encoder and decoder would hold {self.network_parameters():,} parameters, more than "
                f"{MAX_PARAMETERS:,}; choose smaller hidden_dims or z_dim"
            )
        if self.dataset not in DATASETS:
            raise PyroVAEError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.elbo not in ELBOS:
            raise PyroVAEError(f"unknown ELBO {self.elbo!r}; choose one of {', '.join(ELBOS)}")

    def network_parameters(self) -> int:
        """Weights and biases of encoder plus decoder (with the label at every layer, an upper bound)."""
        label = 10 if self.conditional else 0
        encoder = [784, *self.hidden_dims, 2 * self.z_dim]
        decoder = [self.z_dim, *reversed(self.hidden_dims), 784]
        return sum(
            (width_in + label) * width_out + width_out
            for widths in (encoder, decoder)
            for width_in, width_out in zip(widths[:-1], widths[1:])
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PyroVAEError(f"unknown configuration keys {unknown}")
        # saved before the fast step existed: such a run trained, and resumes, with classic SVI
        return cls(**{"fast": False, **values})

    def save_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load_json(cls, path: Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text()))


def parse_hidden_dims(text: str) -> tuple[int, ...]:
    """'512,512' -> (512, 512); the CLI's spelling of the hidden widths."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise PyroVAEError(
            f"--hidden-dims takes comma-separated integers such as 400 or 512,512, got {text!r}"
        ) from None


def replace(config: Config, **changes) -> Config:
    return dataclasses.replace(config, **changes)
