"""pyro-vae: a variational autoencoder and a conditional VAE on MNIST, Fashion-MNIST, CIFAR-10, SVHN or
your own images (a folder or an array), in Pyro.

    from pyro_vae import Config, train, load_run, evaluate, plot_run
    run = train(Config(epochs=5, conditional=True))
    fives = run.sample(n=16, digit=5)            # (16, 28, 28) in [0, 1]; colour: (n, H, W, 3)
    mine = train(Config(dataset="my-images/", image_size="64", validation=500, network="conv",
                        likelihood="discretized-logistic"))
    run = load_run(run.path)                      # later, from its directory
    print(evaluate(run, k=1000).log_likelihood)    # IWAE bound on log p(x|y), nats per image
    codes = run.encode(images, labels)             # per image: z_loc, z_scale (every latent group)
    scores = run.score(images, labels, k=100)      # per image: log p(x) bound, bits/dim, OOD scores
    plot_run(run)                                 # PNG figures into the run directory

Modules: ``config`` (the one dataclass of hyper-parameters), ``sources`` (any source of images read
into uint8 arrays), ``data`` (splits of uint8 images, on the device or read from disk by batch, as float batches),
``networks`` (encoder, decoder: MLP or conv), the pieces ``priors`` p(z), ``posteriors`` q(z|x) (and the
closed-form KL), ``likelihoods`` p(x|z), ``model`` (the VAE and CVAE: Pyro model and guide from the
pieces), ``m2`` (the semi-supervised M2), ``completion`` (the image-completion CVAE), ``models`` (the
class a configuration asks for),
``objectives`` (the loss and its per-step schedule), ``inference`` (the SVI step, the test ELBO),
``training`` (the loop and run directory), ``checkpoint``, ``runs``,
``sampling``, ``evaluation`` (ELBO parts, IWAE), ``per_image`` (encode, reconstruct, score each image),
``outliers`` (out-of-distribution scores, AUROC), ``codecs`` (PNG and WebP lengths), ``plotting``
(figures), ``tracking`` (TensorBoard, MLflow), ``distributed`` (torchrun), ``rng`` (generator states
for exact resume).

The names below load on first use (PEP 562), so that ``import pyro_vae`` and ``pyro-vae --help`` do not
wait for torch, Pyro and matplotlib.
"""

from importlib import import_module

from .config import Config
from .errors import PyroVAEError

# name -> the module that defines it
_LAZY = {
    "Evaluation": "evaluation",
    "evaluate": "evaluation",
    "VAE": "model",
    "SemiSupervisedVAE": "m2",
    "CompletionCVAE": "completion",
    "build_model": "models",
    "gaussian_kl": "posteriors",
    "Run": "runs",
    "latest_run": "runs",
    "list_runs": "runs",
    "load_run": "runs",
    "sample_images": "sampling",
    "save_images": "sampling",
    "resume": "training",
    "train": "training",
    "plot_run": "plotting",
}

__all__ = ["Config", "PyroVAEError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value
    raise AttributeError(f"module 'pyro_vae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
