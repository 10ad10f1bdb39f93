"""The floor: a plain PyTorch VAE training script doing what `pyro-vae train` does, without Pyro.

Same work as `pyro-vae train --hidden-dims 400 --z-dim 50`: MNIST read once into tensors, the test
split binarized once, the training split binarized afresh each epoch, shuffled index batches, the
negative ELBO with the closed-form KL, one fused Adam (as pyro-vae's step), the test ELBO after every epoch, a checkpoint
written (temp file, fsync, rename) after every epoch. bench/throughput.py times it against pyro-vae.

    python bench/plain_vae.py --epochs 5 --data-dir ../shared/data --out /tmp/plain
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torchvision
from torch import nn


class ExpELU(torch.autograd.Function):
    """The same ELU as pyro_vae.networks.elu on CPU (exp is vectorized, torch's expm1 is not),
    copied because this script imports nothing from the project."""

    @staticmethod
    def forward(ctx, hidden):
        activated = torch.exp(hidden.clamp(max=0)).sub_(1).add_(nn.functional.relu(hidden))
        ctx.save_for_backward(activated)
        return activated

    @staticmethod
    def backward(ctx, grad_activated):
        (activated,) = ctx.saved_tensors
        return torch.ops.aten.elu_backward(grad_activated, 1.0, 1.0, 1.0, True, activated)


def elu(hidden):
    return nn.functional.elu(hidden) if hidden.device.type != "cpu" else ExpELU.apply(hidden)


class Encoder(nn.Module):
    def __init__(self, hidden: int, z_dim: int):
        super().__init__()
        self.hidden, self.out = nn.Linear(784, hidden), nn.Linear(hidden, 2 * z_dim)

    def forward(self, x):
        z_loc, z_log_scale = self.out(elu(self.hidden(x))).chunk(2, dim=-1)
        return z_loc, z_log_scale.exp()


class Decoder(nn.Module):
    def __init__(self, hidden: int, z_dim: int):
        super().__init__()
        self.hidden, self.out = nn.Linear(z_dim, hidden), nn.Linear(hidden, 784)

    def forward(self, z):
        return self.out(elu(self.hidden(z)))


def negative_elbo(encoder, decoder, x):
    """-(E_q[log p(x|z)] - KL(q||p)) summed over the batch, one reparametrized z per image."""
    z_loc, z_scale = encoder(x)
    z = z_loc + z_scale * torch.randn_like(z_loc)
    reconstruction = -nn.functional.binary_cross_entropy_with_logits(decoder(z), x, reduction="sum")
    kl = -0.5 * (1 + 2 * z_scale.log() - z_loc.pow(2) - z_scale.pow(2)).sum()
    return -(reconstruction - kl)


def train_epoch(encoder, decoder, optimizer, images, batch_size: int) -> float:
    """One shuffled pass; returns the mean training ELBO per image."""
    total = 0.0
    for index in torch.randperm(images.shape[0], device=images.device).split(batch_size):
        loss = negative_elbo(encoder, decoder, images[index])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total += loss.item()
    return -total / images.shape[0]


@torch.no_grad()
def test_elbo(encoder, decoder, images) -> float:
    return -sum(negative_elbo(encoder, decoder, x).item() for x in images.split(1000)) / images.shape[0]


def read_split(root: str, train: bool, device) -> torch.Tensor:
    data = torchvision.datasets.MNIST(root, train=train, download=False).data
    return data.reshape(-1, 784).to(device, torch.float32) / 255.0


def save(path: Path, state: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--z-dim", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=os.environ.get("PYRO_VAE_DATA", "."))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    train_images = read_split(args.data_dir, True, args.device)
    grey_test = read_split(args.data_dir, False, args.device)
    test_images = torch.bernoulli(grey_test.cpu(), generator=torch.Generator().manual_seed(1234)).to(args.device)
    encoder = Encoder(args.hidden, args.z_dim).to(args.device)
    decoder = Decoder(args.hidden, args.z_dim).to(args.device)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=args.lr, fused=True)
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        binary = (torch.rand_like(train_images) < train_images).to(train_images.dtype)
        train = train_epoch(encoder, decoder, optimizer, binary, args.batch_size)
        test = test_elbo(encoder, decoder, test_images)
        state = {"epoch": epoch, "encoder": encoder.state_dict(), "decoder": decoder.state_dict(),
                 "optimizer": optimizer.state_dict()}  # fmt: skip
        save(args.out / "checkpoint.pt", state)
        print(f"epoch {epoch}: train ELBO {train:.2f}, test ELBO {test:.2f} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
