"""pyro-vae: a variational autoencoder and a conditional VAE on MNIST, Fashion-MNIST, CIFAR-10, SVHN or
your own images (a folder or an array), in Pyro.

    from pyro_vae import Config, train, load_run, evaluate, plot_run
    run = train(Config(epochs=5, conditional=True))
    fives = run.sample(n=16, digit=5)            # (16, 28, 28) in [0, 1]; colour: (n, H, W, 3)
    mine = train(Config(dataset="my-images/", image_size="64", validation=500, network="conv",
                        likelihood="discretized-logistic"))
    run = load_run(run.path)                      # later, from its directory
    print(evaluate(run, k=1000).log_likelihood)    # IWAE bound on log p(x|y), nats per image
    plot_run(run)                                 # PNG figures into the run directory

Modules: ``config`` (the one dataclass of hyper-parameters), ``sources`` (any source of images read
into uint8 arrays), ``data`` (splits of uint8 images, on the device or read from disk by batch, as float batches),
``networks`` (encoder, decoder: MLP or conv), the pieces ``priors`` p(z), ``posteriors`` q(z|x) (and the
closed-form KL), ``likelihoods`` p(x|z), ``model`` (the VAE: Pyro model and guide from the pieces),
``objectives`` (the loss and its per-step schedule), ``inference`` (the SVI step, the test ELBO),
``training`` (the loop and run directory), ``checkpoint``, ``runs``,
``sampling``, ``evaluation`` (ELBO parts, IWAE), ``plotting`` (figures), ``rng`` (generator
states for exact resume).
"""

from .config import Config
from .errors import PyroVAEError
from .evaluation import Evaluation, evaluate
from .model import VAE
from .posteriors import gaussian_kl
from .runs import Run, latest_run, list_runs, load_run
from .sampling import sample_images, save_images
from .training import resume, train

__all__ = [
    "Config",
    "Evaluation",
    "evaluate",
    "resume",
    "PyroVAEError",
    "VAE",
    "Run",
    "gaussian_kl",
    "latest_run",
    "list_runs",
    "load_run",
    "plot_run",
    "sample_images",
    "save_images",
    "train",
]


def __getattr__(name: str):
    """``plot_run`` loads matplotlib, so it is imported on first use, not with the package."""
    if name == "plot_run":
        from .plotting import plot_run

        return plot_run
    raise AttributeError(f"module 'pyro_vae' has no attribute {name!r}")
