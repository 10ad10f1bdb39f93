"""Data parallelism over processes that torchrun starts: torch.distributed's process group, rendezvous
and all-reduce, nothing home-made.

``torchrun --nproc-per-node N $(which pyro-vae) train ...`` (or ``pyro-vae train --nproc N``, which
calls ``torch.distributed.run`` on this machine) starts N copies of the command with ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE`` in their environment. Each joins the process group (``env://``;
gloo on the CPU, nccl on CUDA with one GPU per process, ``cuda:LOCAL_RANK``) and:

- trains on its shard ``batch[rank::N]`` of every global batch of the epoch's permutation, which all
  processes draw alike from a generator keyed by (seed, epoch); ``--batch-size`` stays the global batch;
- after its backward pass, sums the gradients over the processes with one all-reduce of one flat
  buffer (``sum_gradients``). Pyro's losses are sums over images, so the sum of the shards' gradients
  is exactly the gradient one process would take of the whole batch; every process then takes the
  same Adam step from the same numbers and all hold identical parameters;
- draws its binarization and reparametrization noise from its own stream, seeded from (seed, rank).

Why not ``DistributedDataParallel``: DDP needs one forward through its wrapper per backward and every
parameter used in it (or ``find_unused_parameters``, a graph search each step). Here Pyro's ELBO runs
model and guide, and calls the networks several times per step (the IWAE particle plate, the encoder
on the VampPrior's pseudo-inputs, the enumerated labels), and image completion's first steps train
the baseline alone. An all-reduce after the backward pass averages (sums) what DDP would, for every
objective alike. What it gives up, overlapping communication with the backward pass, gains only
where cores or a GPU's copy engines are idle during the backward pass; on a 2-core CPU they are not
(bench/distributed_step.py: the all-reduce is 10.5 ms of a 37 ms MLP step there).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .device import resolve_device
from .errors import PyroVAEError


@dataclass(frozen=True)
class World:
    """This process's place among the ``size`` that train or evaluate together."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (nccl: the GPU)

    @property
    def main(self) -> bool:
        """Rank 0 alone writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This process's part of a batch of indices: every ``size``-th, from its rank on."""
        return index[self.rank :: self.size] if self.distributed else index

    def part(self, split):
        """This process's images of a split (a ``data.Split``): every ``size``-th."""
        return split.take(self.shard(torch.arange(len(split)))) if self.distributed else split

    def sum(self, value: float) -> float:
        """``value`` summed over the processes (in float64)."""
        if not self.distributed:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.item()

    def gather(self, value) -> list:
        """Every process's ``value`` (picklable), in rank order, on every process."""
        if not self.distributed:
            return [value]
        values = [None] * self.size
        dist.all_gather_object(values, value)
        return values


SINGLE = World()


def shared_chunks(chunks: list, world: World, step) -> list:
    """``step(chunk)`` for each of ``chunks`` in order, the chunks shared round-robin among the
    processes (every ``world.size``-th from its rank) and gathered: every process gets the whole list."""
    done = {number: step(chunks[number]) for number in range(world.rank, len(chunks), world.size)}
    if world.distributed:
        for part in world.gather(done):
            done.update(part)
    return [done[number] for number in range(len(chunks))]


def launched_size() -> int:
    """How many processes torchrun started (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise PyroVAEError(f"WORLD_SIZE must be a number of processes, got {os.environ['WORLD_SIZE']!r}") from None


def join(device: str) -> tuple[World, torch.device]:
    """This process's World and device. Under torchrun: joins (once) the process group torchrun's
    environment describes, gloo on the CPU and nccl on CUDA, where each process takes the GPU of its
    local rank. A single process gets ``SINGLE`` and the device as asked."""
    if launched_size() == 1:
        return SINGLE, resolve_device(device)
    target = _process_device(device)
    if not dist.is_initialized():
        if target.type == "cuda":
            torch.cuda.set_device(target)
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo", init_method="env://")
    return World(dist.get_rank(), dist.get_world_size(), target), target


def _process_device(device: str) -> torch.device:
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device not in ("auto", "cpu", "cuda"):
        raise PyroVAEError(f"under torchrun each process takes the GPU of its local rank: use --device cuda "
                           f"(or auto, or cpu), not {device}")  # fmt: skip
    chosen = resolve_device(device)
    if chosen.type == "cpu":
        return chosen
    if local_rank >= torch.cuda.device_count():
        raise PyroVAEError(f"process {local_rank} on this machine has no GPU: it has {torch.cuda.device_count()}; "
                           f"start at most that many processes per node")  # fmt: skip
    return torch.device("cuda", local_rank)


def is_main_process() -> bool:
    """Rank 0, or the only process."""
    return not dist.is_initialized() or dist.get_rank() == 0


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def stream_seed(seed: int, *key: int) -> int:
    """A seed for the random stream named by ``(seed, *key)``: (seed, rank) for a process's draws,
    (seed, epoch) for an epoch's permutation. A hash, so that neighbouring keys give unrelated streams."""
    text = "/".join(str(part) for part in (seed, *key))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")  # NumPy takes 32 bits


def sum_gradients(parameters: list[torch.Tensor], loss: float, world: World) -> float:
    """Sum every gradient, and the loss, over the processes in one all-reduce of one flat buffer;
    returns the summed loss. Parameters without a gradient (the VAE's, while image completion trains
    its baseline alone) have none on every process and stay without one, so Adam skips them as it
    would in one process."""
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    flat = torch.cat([gradient.reshape(-1) for gradient in gradients]
                     + [torch.tensor([loss], dtype=gradients[0].dtype, device=gradients[0].device)])  # fmt: skip
    dist.all_reduce(flat)
    offset = 0
    for gradient in gradients:
        gradient.copy_(flat[offset : offset + gradient.numel()].view_as(gradient))
        offset += gradient.numel()
    return flat[-1].item()


def broadcast_parameters(module: torch.nn.Module, world: World) -> None:
    """Rank 0's weights to every process (they agree already, from the same seed: this makes sure)."""
    if world.distributed:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def launch(processes: int, arguments: list[str]) -> None:
    """``pyro-vae ARGUMENTS`` on ``processes`` processes of this machine through torch.distributed.run
    (torchrun's own code, standalone rendezvous), each with its share of the CPU's threads."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    parsed = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={processes}", "--module",
                                           "pyro_vae.cli.main", *arguments])  # fmt: skip
    try:
        run(parsed)
    except ChildFailedError as failure:
        rank, error = next(iter(failure.failures.items()))
        raise PyroVAEError(f"process {rank} of {processes} stopped (exit code {error.exitcode}); torchrun stopped the "
                           f"others, and the last complete checkpoint is kept") from None  # fmt: skip


def without_nproc(arguments: list[str]) -> list[str]:
    """The command line less its ``--nproc N`` (or ``--nproc=N``)."""
    kept, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--nproc":
            skip = True
        elif not argument.startswith("--nproc="):
            kept.append(argument)
    return kept
