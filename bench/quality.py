"""quality: time to quality, the wall time from launching `pyro-vae train` (defaults) until its test
ELBO first passes -100 nats per image; with --pyro-example DIR also for Pyro's examples/vae/vae.py
(run by throughput.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

from common import PYRO_VAE

QUALITY = -100.0  # nats per image

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
