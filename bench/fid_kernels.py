"""The FID of the same weights with the shipped judge, computed through different CPU kernels: what
``evaluate`` would print on another CPU. A second machine was not at hand, so each run takes another
of the code paths torch picks by CPU: ``ATEN_CPU_CAPABILITY`` (default: no vector instructions,
avx2, and avx512 where this CPU has it) and one or two threads (other blockings of the matrix
products and reductions).

    PYRO_VAE_DATA=../shared/data python bench/fid_kernels.py results/default-vae

Each setting runs in its own process (torch reads the variable at start-up)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import machine, write_record

SETTINGS = [("default", 1), ("default", 2), ("avx2", 1), ("avx2", 2), ("avx512", 2)]


def cpu_has(flag: str) -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and flag in cpuinfo.read_text().split()


def one_fid(run_dir: str, threads: int) -> dict:
    import torch

    from pyro_vae.classifier import load_or_train_classifier
    from pyro_vae.data import load_data
    from pyro_vae.fid import frechet_distance
    from pyro_vae.runs import load_run

    torch.set_num_threads(threads)
    run = load_run(run_dir, device="cpu")
    judge = load_or_train_classifier(run.config, run.device)
    grey = load_data(run.config, run.device, binarize=False).test
    started = time.perf_counter()
    fid = frechet_distance(run.vae, judge, grey, seed=0)
    return {"fid": fid, "classifier_sha256": judge.sha256, "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "seconds": time.perf_counter() - started}  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: this many threads
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_fid(args.run, args.one)))
        return
    rows = []
    for capability, threads in SETTINGS:
        if capability == "avx512" and not cpu_has("avx512f"):  # asking for it there ends in SIGILL
            continue
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
        done = subprocess.run([sys.executable, __file__, args.run, "--one", str(threads)], env=env, check=True,
                              capture_output=True, text=True)  # fmt: skip
        rows.append({"asked": capability, **json.loads(done.stdout.strip().splitlines()[-1])})
        print(rows[-1], flush=True)
    saved = json.loads(open(os.path.join(args.run, "evaluate-k5000.json")).read()).get("fid")
    fids = [row["fid"] for row in rows]
    record = {"machine": machine("cpu"), "run": args.run, "command": " ".join([sys.executable, *sys.argv]),
              "rows": rows, "committed_fid": saved, "spread": max(fids) - min(fids),
              "largest_difference_from_committed": None if saved is None else max(abs(f - saved) for f in fids)}  # fmt: skip
    print(json.dumps(record, indent=1))
    write_record("fid-kernels", "cpu", record)


if __name__ == "__main__":
    main()
