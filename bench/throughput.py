"""How fast pyro-vae trains and evaluates, against a plain PyTorch floor and Pyro's own VAE example.

Sections (each on by default; --only picks some):
  steps    Training throughput, 784-400-50 at batch 128 (with --network conv: the convolutional
           encoder and decoder of `--network conv`, channels 32,64,128, z 50): pyro-vae's SVI step (fast path and
           classic SVI; with --jit the JIT ELBO, with --compile torch.compile'd networks and their
           compile time) against a plain PyTorch loop with the same networks, loss, Adam, batches
           and binarized images, made before the clock starts (the data path is timed apart, in
           `data`). Variants take turns epoch by epoch, so drifts in machine speed hit all alike;
           median of --epochs timed epochs after --warmup.
  data     Seconds per epoch spent making the training batches: pyro-vae's (gather uint8 rows,
           make them float and binarize them, per batch) against float32 images binarized whole
           once per epoch and gathered per batch (what pyro-vae did before any source of images
           came in, and what the floor's script does).
  overhead Pyro's fixed cost per step, apart from arithmetic: milliseconds per step of the fast step
           and of the plain loop on a tiny network (784-8-2, batch 4), where almost nothing is
           computed.
  process  The whole `pyro-vae train` process (start-up, data, per-epoch test ELBO, checkpoints)
           against bench/plain_vae.py doing the same, --process-epochs epochs each, alternating.
  evaluate Seconds per 1,000 test images for ELBO + IWAE (k=1000) of the trained 784-400-50 VAE.
  quality  Time to quality: wall time from launching `pyro-vae train` (defaults) until its test
           ELBO first passes -100 nats/image; with --pyro-example DIR also for Pyro's
           examples/vae/vae.py in DIR (a copy outside this repository), at its own settings.

Prints a summary and writes a JSON record (machine, versions, figures) into bench/results/.

    python bench/throughput.py --device cpu --pyro-example /tmp/pyro-example
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyro
import torch
from pyro.infer import JitTraceMeanField_ELBO

from pyro_vae.config import Config
from pyro_vae.data import ImageData, Split, batches, binarize, load_mnist
from pyro_vae.sources.named import MNIST_SHAPE
from pyro_vae.bounds import split_bounds
from pyro_vae.inference import make_svi, train_epoch
from pyro_vae.model import VAE

sys.path.insert(0, str(Path(__file__).parent))
import plain_vae  # noqa: E402  (the floor, a script beside this one)

RESULTS = Path(__file__).parent / "results"
PYRO_VAE = shutil.which("pyro-vae") or str(Path(sys.executable).with_name("pyro-vae"))
QUALITY = -100.0  # nats per image


def bench_config(args, **changes) -> Config:
    return Config(hidden_dims=(400,), z_dim=50, batch_size=args.batch_size, device=args.device, network=args.network,
                  **changes)  # fmt: skip


NETWORKS = {"mlp": "784-400-50 (ELU)", "conv": "conv 32,64,128 stride 2, z 50 (ELU)"}


def time_steps(args, data) -> dict:
    """Median seconds per epoch of training steps for each variant (the floor's binarization excluded)."""
    variants, compile_seconds = {}, None
    for name, fast, jit, compiled in (("pyro-vae", True, False, False), ("pyro-vae --no-fast", False, False, False),
                                      ("pyro-vae, JitTraceMeanField_ELBO", True, True, False),
                                      ("pyro-vae, torch.compile networks", True, False, True)):  # fmt: skip
        if (jit and not args.jit) or (compiled and not args.compile):
            continue
        pyro.clear_param_store()
        vae = VAE(bench_config(args, fast=fast)).to(args.device)
        svi = make_svi(vae, vae.config)
        if jit:
            svi.objective.loss = JitTraceMeanField_ELBO(ignore_jit_warnings=True)
        if compiled:
            compile_seconds = compile_networks(vae, svi, data.train.batch(torch.arange(args.batch_size)), args)
        variants[name] = (vae, lambda binary, labels, svi=svi, vae=vae: train_epoch(svi, vae, as_data(binary, labels)))
    floor_vae = VAE(bench_config(args)).to(args.device)
    decoder = floor_vae.decoder

    def encoder(x):  # the same encoder network, its raw output [mu, log sigma] read as plain_vae.py does
        z_loc, z_log_scale = floor_vae.encoder(x).chunk(2, dim=-1)
        return z_loc, z_log_scale.exp()

    floor_optimizer = torch.optim.Adam(floor_vae.parameters(), lr=1e-3, foreach=True)
    variants["plain PyTorch"] = (floor_vae, lambda binary, labels: plain_vae.train_epoch(
        encoder, decoder, floor_optimizer, binary, args.batch_size))  # fmt: skip
    seconds = {name: [] for name in variants}
    names = list(variants)
    chunk = args.chunk_steps * args.batch_size
    for epoch in range(args.warmup + args.epochs):
        # The machine's speed drifts by tens of percent within seconds (shared cores), so variants
        # take turns every few steps, each on the same images, starting in a rotating order.
        order = torch.randperm(len(data.train), device=args.device)
        images, labels = binarize(data.train.batch(order)), data.train.labels[order]
        elapsed = dict.fromkeys(names, 0.0)
        for turn, start in enumerate(range(0, len(data.train), chunk)):
            for name in names[turn % len(names):] + names[: turn % len(names)]:
                pyro.clear_param_store()  # Pyro's one global store must hold this variant's parameters
                synchronize(args.device)
                started = time.perf_counter()
                variants[name][1](images[start : start + chunk], labels[start : start + chunk])
                synchronize(args.device)
                elapsed[name] += time.perf_counter() - started
        if epoch >= args.warmup:
            for name in names:
                seconds[name].append(elapsed[name])
        print(f"  epoch {epoch + 1}: " + ", ".join(f"{n} {t:.2f} s" for n, t in elapsed.items()), flush=True)
    floor = statistics.median(seconds["plain PyTorch"])
    figures = {
        name: {
            "seconds_per_epoch": times,
            "median_seconds_per_epoch": statistics.median(times),
            "images_per_second": len(data.train) / statistics.median(times),
            "ratio_to_floor": statistics.median(times) / floor,
        }
        for name, times in seconds.items()
    }
    if compile_seconds is not None:
        figures["pyro-vae, torch.compile networks"]["compile_seconds"] = compile_seconds
    return figures, variants["pyro-vae"][0]


def as_data(binary: torch.Tensor, labels: torch.Tensor) -> ImageData:
    """Binary float images as the training data of one timed turn (no test split: it only trains)."""
    return ImageData(train=Split(binary, labels), test=Split(binary[:0], labels[:0]), binarize_train=False, image_shape=MNIST_SHAPE)


def time_data(args, data, repeats: int = 7) -> dict:
    """Median seconds per epoch of making the shuffled training batches, each way (see ``data``)."""
    grey = data.train.floats()

    def per_batch():  # pyro-vae: uint8 rows to float, binarized, per batch
        for index in batches(len(data.train), args.batch_size, data.train.target, shuffle=True):
            data.train_batch(index)

    def per_epoch():  # float32 images binarized whole, then gathered per batch
        binary = binarize(grey)
        for index in batches(len(data.train), args.batch_size, data.train.target, shuffle=True):
            binary[index]

    seconds = {"uint8, per batch (pyro-vae)": [], "float32, binarized per epoch (before)": []}
    for _ in range(repeats):
        for name, make in zip(seconds, (per_batch, per_epoch)):
            synchronize(args.device)
            started = time.perf_counter()
            make()
            synchronize(args.device)
            seconds[name].append(time.perf_counter() - started)
    return {name: {"median_seconds_per_epoch": statistics.median(times), "seconds": times} for name, times in seconds.items()}


def compile_networks(vae, svi, batch, args) -> float:
    """torch.compile the encoder and decoder; seconds until the first step is done, which includes
    compiling (the last, shorter batch of an epoch compiles once more, with dynamic shapes)."""
    started = time.perf_counter()
    vae.encoder.compile()
    vae.decoder.compile()
    with svi.hot_path():
        svi.step(1, binarize(batch), None)  # batch: floats in [0, 1]
    synchronize(args.device)
    return time.perf_counter() - started


def time_overhead(args, steps: int = 2000) -> dict:
    tiny = Config(hidden_dims=(8,), z_dim=2, device=args.device)
    x = binarize(torch.rand(4, 784, device=args.device))
    pyro.clear_param_store()
    vae = VAE(tiny).to(args.device)
    svi = make_svi(vae, tiny)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3, foreach=True)

    def gaussian_encoder(x):
        q = vae.posterior(x).base_dist
        return q.loc, q.scale

    def pyro_step():
        with svi.hot_path():
            svi.step(1, x, None)

    def plain_step():
        loss = plain_vae.negative_elbo(gaussian_encoder, vae.decoder, x)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()

    milliseconds = {}
    for name, step in (("pyro-vae", pyro_step), ("plain PyTorch", plain_step)):
        for _ in range(200):
            step()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        milliseconds[name] = (time.perf_counter() - started) * 1000 / steps
    return {"ms_per_step": milliseconds, "pyro_overhead_ms": milliseconds["pyro-vae"] - milliseconds["plain PyTorch"]}


def alternate_epochs(variants: dict, epochs: int, device: str, reference: str) -> dict:
    """Seconds per training epoch of each variant, ``{name: (vae, svi, data)}``, taking turns epoch
    by epoch so that the machine's drift hits all alike; returns ``{name: {"seconds_per_epoch"
    (the median), "x_reference" (over ``reference``'s median), "all_seconds"}}``."""
    seconds = {name: [] for name in variants}
    for _ in range(epochs):
        for name, (vae, svi, data) in variants.items():
            synchronize(device)
            started = time.perf_counter()
            train_epoch(svi, vae, data)
            synchronize(device)
            seconds[name].append(time.perf_counter() - started)
            print(f"{name}: {seconds[name][-1]:.2f} s ({len(data.train)} images)", flush=True)
    reference_seconds = statistics.median(seconds[reference])
    return {name: {"seconds_per_epoch": statistics.median(times), "x_reference": statistics.median(times) / reference_seconds,
                   "all_seconds": times} for name, times in seconds.items()}  # fmt: skip


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_process(args) -> dict:
    epochs = str(args.process_epochs)
    seconds = {"pyro-vae train": [], "plain_vae.py": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.process_repeats):
            commands = {
                "pyro-vae train": [PYRO_VAE, "train", "--epochs", epochs, "--hidden-dims", "400", "--z-dim", "50",
                                   "--device", args.device, "--quiet", "--no-plot", "--out", f"{scratch}/pyro{repeat}"],
                "plain_vae.py": [sys.executable, str(Path(__file__).parent / "plain_vae.py"), "--epochs", epochs,
                                 "--device", args.device, "--out", f"{scratch}/plain{repeat}"],
            }  # fmt: skip
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                seconds[name].append(time.perf_counter() - started)
                print(f"  {name}: {seconds[name][-1]:.1f} s", flush=True)
    pyro_median, plain_median = (statistics.median(seconds[name]) for name in seconds)
    return {"epochs": args.process_epochs, "seconds": seconds, "median_seconds": {"pyro-vae train": pyro_median,
            "plain_vae.py": plain_median}, "ratio": pyro_median / plain_median}  # fmt: skip


def time_evaluate(args, vae, data, k: int = 1000, images: int = 1000) -> dict:
    vae.eval()
    synchronize(args.device)
    started = time.perf_counter()
    bounds, _, _, _ = split_bounds(vae, data.test.take(torch.arange(images)), None, k, batch_size=500)
    synchronize(args.device)
    seconds = time.perf_counter() - started
    return {"k": k, "images": images, "seconds_per_1000_images": seconds * 1000 / images,
            "iwae_log_likelihood": bounds.mean().item()}  # fmt: skip


def time_to_quality(command: list[str], pattern: str, limit_s: float, sign: float = 1.0, cwd=None) -> dict:
    """Launch ``command``; return when a line's ELBO, ``sign`` times group 1 of ``pattern``, first
    passes QUALITY."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they are printed, not at exit
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env)
    lines, epochs = [], 0
    try:
        for line in process.stdout:
            lines.append(line.rstrip())
            match = re.search(pattern, line)
            if match:
                epochs += 1
                if sign * float(match.group(1)) > QUALITY:
                    return {"seconds": time.perf_counter() - started, "test_evaluations": epochs, "line": line.strip()}
            if time.perf_counter() - started > limit_s:
                break
    finally:
        process.kill()
        process.wait()
    return {"seconds": None, "test_evaluations": epochs, "line": lines[-1] if lines else "",
            "gave_up_after_s": time.perf_counter() - started}  # fmt: skip


def quality(args) -> dict:
    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        command = [PYRO_VAE, "train", "--epochs", "50", "--device", args.device, "--quiet", "--no-plot",
                   "--out", f"{scratch}/quality"]  # fmt: skip
        figures["pyro-vae train (defaults)"] = time_to_quality(command, r"test elbo\s+(-?[\d.]+)", args.quality_limit)
        print(f"  pyro-vae: {figures['pyro-vae train (defaults)']}", flush=True)
    if args.pyro_example:
        # The example prints the test *loss* (negative ELBO) every --test-frequency epochs; asked for
        # it every epoch, it pays for the same per-epoch test pass as pyro-vae.
        # Its own settings score grey pixels with a Bernoulli, a different quantity with a higher
        # floor; --binarize (added to the local copy) trains and tests on binarized images as
        # pyro-vae does, so that -100 means the same thing for both.
        command = [sys.executable, "vae.py", "--num-epochs", "50", "--test-frequency", "1"]
        pattern = r"average test loss: (-?[\d.]+)"
        for name, extra in (("own settings (grey pixels)", []), ("binarized like pyro-vae", ["--binarize"])):
            result = time_to_quality(command + extra, pattern, args.quality_limit, sign=-1.0, cwd=args.pyro_example)
            figures[f"Pyro examples/vae/vae.py, {name}"] = result
            print(f"  Pyro example, {name}: {result}", flush=True)
    return figures


def machine(device: str) -> dict:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
    }


def write_record(kind: str, device: str, record: dict) -> None:
    """bench/results/{kind}-{device}-{start time}.json"""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{kind}-{device.replace(':', '')}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per variant (steps)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--chunk-steps", type=int, default=10, help="steps per turn (steps)")
    parser.add_argument("--process-epochs", type=int, default=5)
    parser.add_argument("--process-repeats", type=int, default=2)
    parser.add_argument("--quality-limit", type=float, default=900.0, help="seconds before giving up")
    parser.add_argument("--jit", action="store_true", help="also time the fast step with JitTraceMeanField_ELBO")
    parser.add_argument("--compile", action="store_true", help="also time the fast step with torch.compile'd networks")
    parser.add_argument("--pyro-example", help="folder holding a copy of Pyro's examples/vae (vae.py, utils/)")
    parser.add_argument("--only", nargs="+", choices=["steps", "data", "overhead", "process", "evaluate", "quality"])
    parser.add_argument("--data-dir")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="mlp", help="the networks of steps")
    args = parser.parse_args()
    sections = set(args.only or ["steps", "data", "overhead", "process", "evaluate", "quality"])
    record = {"machine": machine(args.device), "device": args.device, "batch_size": args.batch_size,
              "network": NETWORKS[args.network], "started": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
    data = load_mnist(args.data_dir, torch.device(args.device), binarize=True)
    pyro.set_rng_seed(0)
    if sections & {"steps", "evaluate"}:
        print("steps: seconds of training steps per epoch", flush=True)
        record["steps"], trained = time_steps(args, data)
        for name, figures in record["steps"].items():
            print(f"  {name:20s} {figures['median_seconds_per_epoch']:6.2f} s/epoch  "
                  f"{figures['images_per_second']:8.0f} images/s  {figures['ratio_to_floor']:.3f}x the floor")  # fmt: skip
            if "compile_seconds" in figures:
                print(f"  {'':20s} first step, compiling included: {figures['compile_seconds']:.1f} s")
    if "data" in sections:
        record["data"] = time_data(args, data)
        for name, figures in record["data"].items():
            print(f"  data, {name}: {figures['median_seconds_per_epoch']:.3f} s/epoch", flush=True)
    if "overhead" in sections:
        record["overhead"] = time_overhead(args)
        print(f"overhead: {record['overhead']}", flush=True)
    if "evaluate" in sections:
        record["evaluate"] = time_evaluate(args, trained, data)
        print(f"evaluate: {record['evaluate']}", flush=True)
    if "process" in sections:
        print(f"process: {args.process_epochs} epochs, whole process", flush=True)
        record["process"] = time_process(args)
        print(f"  ratio {record['process']['ratio']:.3f}", flush=True)
    if "quality" in sections:
        print(f"quality: wall time until the test ELBO passes {QUALITY:g}", flush=True)
        record["quality"] = quality(args)
    write_record("throughput", args.device, record)


if __name__ == "__main__":
    main()
