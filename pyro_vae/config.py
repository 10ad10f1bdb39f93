"""One dataclass holds every hyper-parameter: the CLI fills it, the checkpoint stores it.

Each field is described once, by ``hyper(...)``: its default, its help text, its allowed values
(a tuple of choices, or bounds) and its command-line flag. ``Config.validate`` checks a value
against that description, and ``pyro_vae.cli.options`` builds the click option from it, so the
list of likelihoods (say) lives in one place and ``--help`` shows it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import PyroVAEError

LIKELIHOODS = ("bernoulli", "normal", "continuous-bernoulli", "discretized-logistic")
NETWORKS = ("mlp", "conv")
ELBOS = ("analytic", "trace")
ACTIVATIONS = ("elu", "relu", "gelu", "tanh", "softplus")
DATASETS = ("mnist", "fashion-mnist", "cifar10", "svhn")  # by name; any other value is a path (data.py)
# The shape and classes of the named sources, known before any file is read; a folder's or an
# array's are read from it (data.py) and recorded in the run like these.
NAMED_SOURCES = {
    "mnist": ((1, 28, 28), tuple(str(digit) for digit in range(10))),
    "fashion-mnist": ((1, 28, 28), ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                    "Sneaker", "Bag", "Ankle boot")),
    "cifar10": ((3, 32, 32), ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                              "truck")),
    "svhn": ((3, 32, 32), tuple(str(digit) for digit in range(10))),
}  # fmt: skip
MAX_IMAGE_SIDE = 4096
OBJECTIVES = ("elbo", "iwae")
OPTIMIZERS = ("adam", "adamax")
LR_SCHEDULES = ("constant", "cosine")
PRIORS = ("normal", "vamp")
POSTERIORS = ("gaussian", "iaf")
MAX_SEED = 2**32 - 1  # NumPy's limit; Pyro seeds NumPy too
MAX_GROUPS = 32  # latent groups of a hierarchy (NVAE's deepest MNIST model has 15)
MAX_SAMPLES = 100_000  # images one `sample` draws: 314 MB of float32; more is almost surely a typo
MAX_PARAMETERS = 100_000_000  # 400 MB of weights, 1.2 GB with Adam's state: beyond it, surely a typo
# (models.check_size counts them on torch's meta device, before anything is allocated)


def hyper(default, help: str, *, flag: str | None = None, choices: tuple | None = None, minimum=None,
          maximum=None, positive: bool = False, kind: type | None = None, secondary: str | None = None,
          open_interval: bool = False, derived: bool = False):  # fmt: skip
    """A Config field and its description: ``choices`` (a fixed set), ``minimum``/``maximum``
    (inclusive bounds, exclusive with ``open_interval``) or ``positive`` (> 0 and finite); ``flag``
    the CLI spelling (default: the field name with dashes; None-able fields give their ``kind``);
    ``secondary`` the off-switch of a boolean flag pair (``--fast/--no-fast``). A ``derived`` field
    is no option: the data fills it (the image shape) and the run records it."""
    metadata = dict(help=help, flag=flag, choices=choices, minimum=minimum, maximum=maximum, positive=positive,
                    kind=kind or type(default), secondary=secondary, optional=default is None,
                    open_interval=open_interval, derived=derived)  # fmt: skip
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class Config:
    # training schedule
    epochs: int = hyper(10, "Epochs to train.", minimum=1)
    batch_size: int = hyper(128, "Images per SVI step.", minimum=1)
    learning_rate: float = hyper(1e-3, "Adam learning rate.", flag="--lr", positive=True)
    seed: int = hyper(0, "Seeds torch, NumPy, Python and Pyro.", minimum=0, maximum=MAX_SEED)
    # training practice of the deep VAEs (practice.py)
    optimizer: str = hyper("adam", "adam, or adamax (Kingma & Ba 2015; NVAE trains with it).", choices=OPTIMIZERS)
    lr_schedule: str = hyper("constant", "constant, or cosine: a half cosine from --lr down to 0 at the last epoch "
                                         "(Loshchilov & Hutter 2017).", choices=LR_SCHEDULES)  # fmt: skip
    lr_warmup: int = hyper(0, "Epochs over which the learning rate rises linearly from 0 (Goyal et al. 2017).",
                           minimum=0)  # fmt: skip
    grad_clip: float | None = hyper(None, "Clip the global norm of the gradient of the batch's summed loss (some 3,000-"
                                          "6,000 for 128 MNIST digits) to this, and skip an update whose norm is not "
                                          "finite (VDVAE, Child 2021) [default: no clip].",
                                    kind=float, positive=True)  # fmt: skip
    ema: float | None = hyper(None, "Keep an exponential moving average of the weights with this decay, e.g. 0.999, "
                                    "for evaluation and sampling (VDVAE) [default: none].", kind=float,
                              minimum=0.0, maximum=1.0, open_interval=True)  # fmt: skip
    # networks: encoder C*H*W -> hidden_dims -> 2 z_dim, decoder z_dim -> reversed(hidden_dims) -> C*H*W
    z_dim: int = hyper(32, "Latent dimensions.", minimum=1)
    hidden_dims: tuple[int, ...] = hyper((512, 512), "MLP widths, comma-separated, e.g. 400 or 512,512.")
    activation: str = hyper("elu", "Hidden activation (ELU learned fastest, bench/activations.py).",
                            choices=ACTIVATIONS)  # fmt: skip
    network: str = hyper("mlp", "mlp: fully connected layers of --hidden-dims; conv: 4x4 stride-2 convolutions "
                                "of --conv-channels, for any image shape (networks.py).", choices=NETWORKS)
    conv_channels: tuple[int, ...] = hyper((32, 64, 128), "--network conv: channels of each stride-2 convolution "
                                                          "(each halves the side), comma-separated.")  # fmt: skip
    # the data
    dataset: str = hyper("mnist", "mnist, fashion-mnist, cifar10, svhn (torchvision's readers, under --data-dir), "
                                  "or a path: a folder of images (flat, or one subfolder per class) or a .npy "
                                  "(N,H,W), (N,H,W,C), (N,C,H,W) or .npz (images, labels, class_names) array.")
    image_size: str | None = hyper(None, "Resize every image once on load (antialiased) to S x S or H x W, "
                                         "written S or HxW [default: as stored].", kind=str)
    channels: int | None = hyper(None, "1: grey, 3: colour (converting where the source differs) "
                                       "[default: as stored].", kind=int, choices=(1, 3))
    test_fraction: float = hyper(0.1, "A source without its own test split holds out this share of its images "
                                      "(a fixed seed) as the test split.", minimum=0.0, maximum=1.0,
                                 open_interval=True)  # fmt: skip
    validation: int = hyper(0, "Hold out this many training images (a fixed seed); each epoch then reports "
                               "them (val_elbo) and only evaluate touches the test split.", minimum=0)
    subset: int | None = hyper(None, "Use only the first N images of each of the source's splits "
                                     "(quick experiments) [default: all].", kind=int, minimum=1)
    image_shape: tuple[int, ...] | None = hyper(None, "[C, H, W] of the images, from the data.", kind=tuple,
                                                derived=True)  # fmt: skip
    class_names: tuple[str, ...] | None = hyper(None, "The source's class names, from the data (None: no labels).",
                                                kind=tuple, derived=True)  # fmt: skip
    # the probabilistic model
    likelihood: str = hyper("bernoulli", "bernoulli: dynamically binarized pixels; normal (fixed scale) "
                                         "and continuous-bernoulli: densities of pixels in [0, 1]; "
                                         "discretized-logistic: the probability of the 8-bit pixel values "
                                         "(Salimans et al. 2017).", choices=LIKELIHOODS)  # fmt: skip
    mixture: int = hyper(1, "discretized-logistic: logistic components per subpixel.", minimum=1, maximum=64)
    normal_scale: float = hyper(0.1, "Standard deviation of the normal likelihood, in pixel units.", positive=True)
    elbo: str = hyper(None, "analytic: TraceMeanField_ELBO, closed-form KL (of every group given the groups above); "
                            "trace: Trace_ELBO, Monte-Carlo KL [default: analytic].",
                      choices=ELBOS, kind=str)  # fmt: skip
    # the variants: each a piece the one model and guide compose (priors.py, posteriors.py, objectives.py)
    objective: str = hyper("elbo", "elbo: the ELBO (estimated as --elbo says); iwae: the importance-weighted "
                                   "bound with --particles draws per image (Burda et al. 2015).",
                           choices=OBJECTIVES)  # fmt: skip
    particles: int = hyper(1, "Draws of z per image: the IWAE bound's K (--objective iwae), or with the ELBO "
                              "the number of draws its estimate averages.", minimum=1, maximum=10_000)  # fmt: skip
    beta: float = hyper(1.0, "The KL's weight (beta-VAE, Higgins et al. 2017); evaluation always uses 1.",
                        positive=True)  # fmt: skip
    kl_warmup: int = hyper(0, "Epochs over which the KL's weight rises linearly from 0 to --beta "
                              "(Sonderby et al. 2016).", minimum=0)  # fmt: skip
    free_bits: float = hyper(0.0, "Free bits: the ELBO counts each latent group's KL, averaged over the batch, as "
                                  "no less than this many nats (Kingma et al. 2016), so no group collapses.",
                             minimum=0.0)  # fmt: skip
    prior: str = hyper("normal", "normal: N(0, I); vamp: the VampPrior, a mixture of q(z|u_k) over "
                                 "--pseudo-inputs learned inputs (Tomczak & Welling 2018); with --conditional "
                                 "each input carries a class and p(z|y) mixes those of class y.",
                       choices=PRIORS)  # fmt: skip
    pseudo_inputs: int = hyper(500, "VampPrior: number of learned pseudo-inputs.", minimum=1, maximum=10_000)
    posterior: str = hyper("gaussian", "gaussian: N(mu(x), diag sigma(x)^2); iaf: that Gaussian through "
                                       "--flows inverse autoregressive maps (Kingma et al. 2016).",
                           choices=POSTERIORS)  # fmt: skip
    flows: int = hyper(2, "IAF: number of autoregressive maps.", minimum=1, maximum=64)
    stochastic_layers: int = hyper(1, "Latent groups N: 1: p(z) p(x|z); N >= 2: a top-down hierarchy p(z_N) "
                                      "prod_l p(z_l|z_>l) p(x|z_1) with q(z_N|x) prod_l q(z_l|z_>l,x) "
                                      "sharing its top-down path (Sonderby et al. 2016; Vahdat & Kautz 2020).",
                                   minimum=1, maximum=MAX_GROUPS)  # fmt: skip
    upper_z_dims: tuple[int, ...] | None = hyper(None, "Dimensions of z_2..z_N above z_1 (--z-dim), comma-separated "
                                                       "[default: each half the one below, at least 2].",
                                                 kind=tuple)  # fmt: skip
    conditional: bool = hyper(None, "Train a conditional VAE on the class labels (--labels turns it on).", kind=bool)
    label_every_layer: bool = hyper(True, "Conditional: feed the label to every layer or only to the input.",
                                    flag="--label-every-layer", secondary="--label-input-only")  # fmt: skip
    label_scale: float = hyper(30.0, "Conditional: the networks see this times the one-hot label.", positive=True)
    # semi-supervised (Kingma et al. 2014, M2): y is a latent variable where its label is hidden
    labels: int | None = hyper(None, "Conditional: keep the labels of only this many training images, "
                                     "balanced over the classes (the first N mod classes take one more) and chosen by --seed; the rest are unlabeled "
                                     "and y is summed out (Kingma et al. 2014, M2) [default: all labels].",
                               kind=int, minimum=2)  # fmt: skip
    classifier_weight: float = hyper(50.0, "Semi-supervised: weight alpha of the labeled images' mean "
                                           "-log q(y|x) against the per-image ELBO.", positive=True)  # fmt: skip
    # image completion (Sohn et al. 2015, Pyro's examples/cvae): p(x_hidden | x_visible), see completion.py
    visible_quadrants: int | None = hyper(None, "Train a CVAE that completes a digit from 1, 2 or 3 visible quadrants "
                                                "(1: bottom-left; 2: the left half; 3: all but bottom-right), with "
                                                "the deterministic baseline network trained first (Sohn et al. 2015).",
                                          kind=int, minimum=1, maximum=3)  # fmt: skip
    baseline_epochs: int = hyper(None, "Image completion: epochs that train the baseline network alone, before "
                                       "the CVAE's epochs (unset: 3, or fewer so that --epochs leaves the CVAE "
                                       "one).", kind=int, minimum=1)  # fmt: skip
    # start from the weights of this run directory (fine-tuning, e.g. with a lower learning rate)
    # instead of a fresh initialization; the networks must have the same shapes
    init_from: str | None = hyper(None, "Start from this run's weights (fine-tuning, e.g. with a lower --lr); "
                                        "the encoder and decoder must have the same shapes, and a piece the "
                                        "other run lacks (a VampPrior, a second layer) starts fresh.",
                                  kind=Path)  # fmt: skip
    # how fast: Pyro's ELBO with one fused torch Adam and validation off in the loop (False:
    # pyro.infer.SVI with pyro.optim.Adam, validation on); the same updates (bench/throughput.py)
    fast: bool = hyper(True, "Fast step (Pyro's ELBO, one fused torch Adam, validation off in the loop) "
                             "or pyro.infer.SVI with pyro.optim.Adam.", secondary="--no-fast")  # fmt: skip
    # where things run and live
    device: str = hyper("auto", "auto (CUDA when present), cpu, cuda or cuda:N.")
    world_size: int = hyper(1, "Processes the run trains on, as torchrun started it (distributed.py).", minimum=1,
                            derived=True)  # fmt: skip
    data_dir: str | None = hyper(None, "Folder holding MNIST/raw/ (or FashionMNIST/raw/) [default: "
                                       "$PYRO_VAE_DATA, else ~/.cache/pyro-vae/data].", kind=Path)  # fmt: skip

    def __post_init__(self):
        self.hidden_dims = tuple(self.hidden_dims)
        self.conv_channels = tuple(self.conv_channels)
        if self.upper_z_dims is not None:
            self.upper_z_dims = tuple(self.upper_z_dims)
        if self.image_shape is not None:
            self.image_shape = tuple(self.image_shape)
        if self.class_names is not None:
            self.class_names = tuple(self.class_names)
        if self.image_shape is None and self.dataset in NAMED_SOURCES:
            self._fill_named_source()
        self._fill_unset_from_the_rest()
        self.validate()

    def _fill_unset_from_the_rest(self) -> None:
        """Fields left unset (None) whose best value depends on the others, so that an option the user
        did not give never makes a combination fail; the run records the value taken."""
        self.elbo = "analytic" if self.elbo is None else self.elbo
        if self.conditional is None:
            self.conditional = self.labels is not None
        if self.baseline_epochs is None:
            self.baseline_epochs = max(1, min(3, self.epochs - 1)) if _is_int(self.epochs) else 3

    def _fill_named_source(self) -> None:
        """A named source's shape (after --image-size and --channels) and classes, known up front."""
        (channels, height, width), names = NAMED_SOURCES[self.dataset]
        if self.image_size is not None and _parse_image_size(self.image_size) is not None:
            height, width = _parse_image_size(self.image_size)
        self.image_shape = (self.channels or channels, height, width)
        self.class_names = names

    @property
    def pixels(self) -> int | None:
        """C * H * W, the dimension of x; None until the data has told the shape."""
        return None if self.image_shape is None else math.prod(self.image_shape)

    @property
    def group_dims(self) -> tuple[int, ...]:
        """z_1 .. z_N's dimensions: --z-dim, then --upper-z-dims or halving (as LVAE's 64-32-16-8-4)."""
        if self.upper_z_dims is not None:
            return (self.z_dim, *self.upper_z_dims)
        dims = [self.z_dim]
        for _ in range(self.stochastic_layers - 1):
            dims.append(max(2, dims[-1] // 2))
        return tuple(dims)

    @property
    def num_classes(self) -> int | None:
        """Classes of the source; None for an unlabelled source or one not yet read."""
        return None if self.class_names is None else len(self.class_names)

    def validate(self) -> None:
        """Reject nonsense before any work is done, with a message naming the field."""
        for field in dataclasses.fields(self):
            check_value(field.name, getattr(self, field.name), field.metadata)
        if not self.hidden_dims or any(not _is_int(width) or width <= 0 for width in self.hidden_dims):
            raise PyroVAEError(f"hidden_dims must be one or more positive integers, got {self.hidden_dims!r}")
        if not self.conv_channels or any(not _is_int(width) or width <= 0 for width in self.conv_channels):
            raise PyroVAEError(f"conv_channels must be one or more positive integers, got {self.conv_channels!r}")
        upper = self.upper_z_dims
        if upper is not None and (len(upper) != self.stochastic_layers - 1
                                  or any(not _is_int(dim) or dim <= 0 for dim in upper)):  # fmt: skip
            raise PyroVAEError(f"upper_z_dims must be {self.stochastic_layers - 1} positive integers, the dimensions "
                               f"of z_2..z_{self.stochastic_layers} (--stochastic-layers {self.stochastic_layers}), "
                               f"got {upper!r}")  # fmt: skip
        if not self.dataset:
            raise PyroVAEError("dataset must be mnist, fashion-mnist, cifar10, svhn or a path, got an empty string")
        if self.image_size is not None and _parse_image_size(self.image_size) is None:
            raise PyroVAEError(f"--image-size takes S or HxW, each from 1 to {MAX_IMAGE_SIDE} (e.g. 32 or 64x48), "
                               f"got {self.image_size!r}")  # fmt: skip
        self._check_data_fields()
        for combination, reason in self.impossible_combinations():
            if combination:
                raise PyroVAEError(reason)

    def impossible_combinations(self):
        """(holds, one-line reason) for each combination of variants that cannot work: the real
        constraints, each listed in docs/guide/models.md. Every other combination composes."""
        yield (self.batch_size < self.world_size,
               f"--batch-size {self.batch_size} is the global batch, which the {self.world_size} processes share: "
               f"make it at least {self.world_size}")  # fmt: skip
        yield (self.mixture > 1 and self.likelihood != "discretized-logistic",
               f"--mixture {self.mixture} is the discretized logistic's number of components; use it with "
               f"--likelihood discretized-logistic")  # fmt: skip
        yield (self.prior == "vamp" and self.conditional and self.num_classes is not None
               and self.pseudo_inputs < self.num_classes,
               f"--pseudo-inputs {self.pseudo_inputs} with --conditional: each of the {self.num_classes} classes needs "
               f"at least one pseudo-input of its own")  # fmt: skip
        yield (self.free_bits > 0 and (self.objective == "iwae" or self.labels is not None),
               f"--free-bits {self.free_bits:g} floors each latent group's KL term of the ELBO; the IWAE bound and "
               f"M2's bound with y summed out have no such term: drop --objective iwae or --labels")  # fmt: skip
        yield (self.labels is not None and not self.conditional,
               f"--labels {self.labels} trains M2, a conditional model (y enters its networks): "
               f"conditional=False contradicts it")  # fmt: skip
        if self.visible_quadrants is not None:
            flag = f"--visible-quadrants {self.visible_quadrants}"
            yield (self.conditional or self.prior == "vamp",
                   f"{flag}: the completion model's condition is the visible pixels and its prior the network "
                   f"p(z | x_visible); drop --conditional and --prior vamp")  # fmt: skip
            yield (self.epochs <= self.baseline_epochs,
                   f"{flag}: --epochs {self.epochs} leaves no epoch for the CVAE after the {self.baseline_epochs} "
                   f"baseline epochs (--baseline-epochs); give more --epochs")  # fmt: skip

    def _check_data_fields(self) -> None:
        """The recorded shape and classes, where given, must be usable."""
        shape = self.image_shape
        if shape is not None and (len(shape) != 3 or not all(_is_int(side) and side > 0 for side in shape)
                                  or shape[0] not in (1, 3)):  # fmt: skip
            raise PyroVAEError(f"image_shape must be [C, H, W] with C 1 or 3, got {list(shape)!r}")
        names = self.class_names
        if names is not None and (len(names) < 2 or not all(isinstance(name, str) for name in names)):
            raise PyroVAEError(f"class_names must be two or more names, got {names!r}")

    @property
    def decoder_outputs(self) -> int:
        """Numbers the decoder gives per subpixel: the likelihood piece's (likelihoods.py) own count."""
        from .likelihoods import likelihood_for  # torch's module, read only once a network is built

        return likelihood_for(self).decoder_outputs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        values = dict(values)
        # the bottom-up two-layer model (top: --top-z-dim) was replaced by the top-down hierarchy
        if values.pop("top_z_dim", None) is not None and values.get("stochastic_layers") == 2:
            raise PyroVAEError("this run has the bottom-up two-layer model (q(z1|x) q(z2|z1)) that the top-down "
                               "hierarchy replaced on 2026-12-07: train it again with --stochastic-layers 2")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PyroVAEError(f"unknown configuration keys {unknown}")
        # saved before the fast step existed: such a run trained, and resumes, with classic SVI;
        # before image_shape was recorded every run was 28x28 grey, filled in from the dataset's name
        return cls(**{"fast": False, **values})

    def save_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load_json(cls, path: Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_value(name: str, value, description) -> None:
    """One field's value against its ``hyper`` description; a one-line error naming the field."""
    kind, choices = description["kind"], description["choices"]
    if value is None and description["optional"]:
        return
    if choices is not None:
        if value not in choices:
            raise PyroVAEError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}")
    elif kind is int:
        low, high = description["minimum"], description["maximum"]
        if not _is_int(value) or (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise PyroVAEError(f"{name} must be an integer {bounds}, got {value!r}")
    elif kind is float:
        low, high, open_interval = description["minimum"], description["maximum"], description["open_interval"]
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        outside = number and (
            (low is not None and (value <= low if open_interval else value < low))
            or (high is not None and (value >= high if open_interval else value > high))
        )
        if not number or (description["positive"] and value <= 0) or outside:
            must = "a positive number" if description["positive"] else f"a finite number of at least {low}"
            if high is not None:
                must = f"a number strictly between {low} and {high}" if open_interval else f"a number from {low} to {high}"
            raise PyroVAEError(f"{name} must be {must}, got {value!r}")
    elif kind is bool and not isinstance(value, bool):
        raise PyroVAEError(f"{name} must be true or false, got {value!r}")
    elif kind in (str, Path) and not isinstance(value, str):
        raise PyroVAEError(f"{name} must be a string, got {value!r}")


def _parse_image_size(text: str) -> tuple[int, int] | None:
    """'32' -> (32, 32), '64x48' -> (64, 48) (height x width); None if it is not that."""
    parts = str(text).lower().split("x")
    if len(parts) not in (1, 2) or not all(part.strip().isdigit() for part in parts):
        return None
    sides = [int(part) for part in parts]
    if not all(1 <= side <= MAX_IMAGE_SIDE for side in sides):
        return None
    return (sides[0], sides[-1])


def image_size_of(config: Config) -> tuple[int, int] | None:
    """(H, W) that ``--image-size`` asks for, or None (keep the stored size)."""
    return None if config.image_size is None else _parse_image_size(config.image_size)


def parse_hidden_dims(text: str, flag: str = "--hidden-dims") -> tuple[int, ...]:
    """'512,512' -> (512, 512); the CLI's spelling of the hidden widths (and of --conv-channels)."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise PyroVAEError(f"{flag} takes comma-separated integers such as 400 or 512,512, got {text!r}") from None


def replace(config: Config, **changes) -> Config:
    return dataclasses.replace(config, **changes)
