"""Two processes against one on this machine: training epochs and a sharded evaluation.

Sections (each on by default; --only picks some):
  epochs    `pyro-vae train` of the default VAE (784-400-50, batch 128) and of the conv VAE
            (`--network conv`), each as one process with all the CPU's threads against `--nproc 2`
            (torch.distributed.run, gloo on the CPU, each process half the threads), the two taking
            turns run by run so that the machine's drift hits both alike. An epoch's seconds are the
            run's own (metrics.jsonl: the epoch's steps and its held-out ELBO, not the start-up); the
            first epoch of each run is left out as warm-up, and the median of the rest is reported.
  evaluate  `pyro-vae evaluate RUN --k K --no-fid` on one process against `--nproc 2`, the seconds
            each reports, and their bounds (equal: the draws are keyed by image, not by process).

Prints a summary and writes a JSON record (machine, versions, figures) into bench/results/.

    python bench/distributed.py --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


from common import PYRO_VAE, machine, write_record  # a script beside this one

NETWORKS = {"mlp": [], "conv": ["--network", "conv"]}


def epoch_seconds(run_dir: Path) -> list[float]:
    return [json.loads(line)["seconds"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def time_epochs(args) -> dict:
    threads = os.cpu_count() or 1
    ways = {"1 process": ([], threads), "2 processes": (["--nproc", "2"], max(1, threads // 2))}
    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        for network, flags in NETWORKS.items():
            if network not in args.networks:
                continue
            seconds = {way: [] for way in ways}
            for repeat in range(args.repeats):
                for way, (launch, way_threads) in ways.items():
                    out = Path(scratch) / f"{network}-{way.replace(' ', '')}-{repeat}"
                    command = [PYRO_VAE, "train", *flags, "--epochs", str(args.epochs), "--device", args.device,
                               "--quiet", "--no-plot", "--out", str(out), *launch]  # fmt: skip
                    env = {**os.environ, "OMP_NUM_THREADS": str(way_threads)}
                    subprocess.run(command, check=True, capture_output=True, env=env)
                    seconds[way] += epoch_seconds(out)[1:]
                    print(f"  {network}, {way}: {epoch_seconds(out)} s per epoch", flush=True)
            medians = {way: statistics.median(times) for way, times in seconds.items()}
            figures[network] = {"seconds_per_epoch": medians, "all_seconds": seconds,
                                "two_over_one": medians["2 processes"] / medians["1 process"]}  # fmt: skip
            print(f"{network}: {medians}, 2 processes / 1 = {figures[network]['two_over_one']:.3f}", flush=True)
    return figures


def time_evaluate(args) -> dict:
    figures = {}
    ways = {"1 process": ([], os.cpu_count() or 1), "2 processes": (["--nproc", "2"], max(1, (os.cpu_count() or 1) // 2))}
    for way, (launch, threads) in ways.items():
        command = [PYRO_VAE, "evaluate", args.run, "--k", str(args.k), "--no-fid", "--json", "--device", args.device, *launch]
        done = subprocess.run(command, check=True, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)})  # fmt: skip
        result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
        figures[way] = {key: result[key] for key in ("seconds", "log_likelihood", "log_likelihood_stderr", "elbo", "k", "n_images")}
        print(f"  evaluate, {way}: {figures[way]}", flush=True)
    figures["two_over_one"] = figures["2 processes"]["seconds"] / figures["1 process"]["seconds"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="+", choices=("epochs", "evaluate"), default=("epochs", "evaluate"))
    parser.add_argument("--networks", nargs="+", choices=tuple(NETWORKS), default=tuple(NETWORKS))
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training run (the first is warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="training runs per way and network")
    parser.add_argument("--run", default=str(Path(__file__).parents[1] / "results" / "default-vae"))
    parser.add_argument("--k", type=int, default=5000)
    args = parser.parse_args()
    record = {"machine": machine(args.device), "command": " ".join(["python", *sys.argv])}
    if "epochs" in args.only:
        record["epochs"] = {"epochs_per_run": args.epochs, "repeats": args.repeats, **time_epochs(args)}
    if "evaluate" in args.only:
        record["evaluate"] = {"run": args.run, **time_evaluate(args)}
    write_record("distributed", args.device, record)


if __name__ == "__main__":
    main()
