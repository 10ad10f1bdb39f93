"""pythae's half of bench/pythae_epoch.py, run by that script in a separate environment with pythae
0.1.2 installed (it imports nothing of pyro-vae):

    python -m venv ../pythae-env && ../pythae-env/bin/pip install torch==2.14.1 pythae==0.1.2

pythae's ``VAE`` with the networks of pyro-vae's default MLP (784-512-512-32, ELU, a Bernoulli decoder
with pythae's "bce" loss), trained by its ``TrainingPipeline`` (Adam, lr 1e-3, batch 128) on the
binarized training images with the test images evaluated each epoch, as ``pyro-vae train`` does; then
the same importance-weighted bound pyro-vae's ``evaluate`` computes, written out here by hand:

    L_k(x) = logsumexp_i [log N(z_i; 0, I) + log Bern(x | sigmoid(g(z_i))) - log N(z_i; mu, sigma^2)] - log k
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from pythae.models import VAE, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.pipelines import TrainingPipeline
from pythae.trainers import BaseTrainerConfig
from pythae.trainers.training_callbacks import TrainingCallback
from torch import nn

PIXELS, LATENT = 784, 32


class Encoder(BaseEncoder):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(PIXELS, 512), nn.ELU(), nn.Linear(512, 512), nn.ELU(), nn.Linear(512, 2 * LATENT))

    def forward(self, x):
        z_loc, z_log_scale = self.net(x.reshape(x.shape[0], -1)).split([LATENT, LATENT], dim=-1)
        return ModelOutput(embedding=z_loc, log_covariance=2 * z_log_scale)


class Decoder(BaseDecoder):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, 512), nn.ELU(), nn.Linear(512, 512), nn.ELU(), nn.Linear(512, PIXELS))

    def logits(self, z):
        return self.net(z)

    def forward(self, z):
        return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).reshape(z.shape[0], 1, 28, 28))


class EpochTimer(TrainingCallback):
    """Seconds of each epoch, from its start to its end: the training steps and the test evaluation,
    what pyro-vae's metrics.jsonl records as an epoch's seconds."""

    def __init__(self):
        self.seconds, self.started = [], None

    def on_epoch_begin(self, training_config, **kwargs):
        self.started = time.perf_counter()

    def on_epoch_end(self, training_config, **kwargs):
        self.seconds.append(time.perf_counter() - self.started)


@torch.no_grad()
def iwae_bound(model: VAE, x: torch.Tensor, k: int, chunk: int = 100) -> torch.Tensor:
    bounds = []
    for images in x.split(10):
        encoded = model.encoder(images)
        z_loc, z_scale = encoded.embedding, (0.5 * encoded.log_covariance).exp()
        log_weights = []
        for start in range(0, k, chunk):
            q = torch.distributions.Normal(z_loc, z_scale)
            z = q.sample((min(chunk, k - start),))  # (draws, n, LATENT)
            logits = model.decoder.logits(z)
            log_px = (images * logits - nn.functional.softplus(logits)).sum(-1)
            log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
            log_weights.append(log_pz + log_px - q.log_prob(z).sum(-1))
        bounds.append(torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k))
    return torch.cat(bounds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="the .npz bench/pythae_epoch.py wrote")
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--k", type=int, default=1000, help="0: no bound")
    args = parser.parse_args()
    torch.manual_seed(0)
    arrays = np.load(args.data)
    train, test, scored = (arrays[name].astype(np.float32).reshape(-1, 1, 28, 28) for name in ("train", "test", "scored"))
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce"),
                encoder=Encoder(), decoder=Decoder())  # fmt: skip
    config = BaseTrainerConfig(output_dir=args.out, num_epochs=args.epochs, learning_rate=1e-3,
                               per_device_train_batch_size=128, per_device_eval_batch_size=1000, no_cuda=True)  # fmt: skip
    timer = EpochTimer()
    started = time.perf_counter()
    TrainingPipeline(training_config=config, model=model)(train_data=train, eval_data=test, callbacks=[timer])
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, "seconds_per_epoch": sum(timer.seconds) / args.epochs, "epoch_seconds": timer.seconds,
              "threads": torch.get_num_threads()}  # fmt: skip
    if args.k > 0:
        bound = iwae_bound(model.eval(), torch.from_numpy(scored).reshape(-1, PIXELS), args.k)
        result.update(iwae_bound=bound.mean().item(), iwae_stderr=(bound.std() / math.sqrt(len(bound))).item())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
