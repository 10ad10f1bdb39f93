"""Re-evaluate committed runs with today's code and compare with their saved evaluations.

For each run, `evaluate(run, k)` (default k=100, no FID) against the run's saved `evaluate-k{K}.json`:
the ELBO and its parts are estimates of the same numbers whatever k, so they must agree within their
Monte-Carlo error; the IWAE bound at a smaller k is looser, never tighter, than the saved one.

    PYRO_VAE_DATA=../shared/data python bench/recheck_evaluations.py results/default-vae ... --saved-k 5000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import machine, write_record
from pyro_vae.evaluation import evaluate
from pyro_vae.runs import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--saved-k", type=int, default=5000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = []
    for run_dir in args.runs:
        saved = json.loads((Path(run_dir) / f"evaluate-k{args.saved_k}.json").read_text())
        started = time.perf_counter()
        now = evaluate(load_run(run_dir, device=args.device), k=args.k).to_dict()
        saved_kl = saved.get("kl", saved.get("kl_analytic"))  # named kl_analytic before 2026-12-07
        row = {"run": run_dir, "k": args.k, "seconds": time.perf_counter() - started,
               "elbo": (now["elbo"], saved["elbo"]), "kl": (now["kl"], saved_kl),
               "reconstruction": (now["reconstruction"], saved["reconstruction"]),
               "active_units": (now["active_units"], saved["active_units"]),
               "log_likelihood": (now["log_likelihood"], saved["log_likelihood"]),
               "log_likelihood_stderr": now["log_likelihood_stderr"],
               "elbo_difference": now["elbo"] - saved["elbo"],
               "bound_gap_to_saved_k": saved["log_likelihood"] - now["log_likelihood"]}  # fmt: skip
        rows.append(row)
        print(f"{run_dir}: ELBO {now['elbo']:.3f} (saved {saved['elbo']:.3f}, difference {row['elbo_difference']:+.3f}), "
              f"KL {now['kl']:.3f} ({saved_kl:.3f}), active units {now['active_units']} ({saved['active_units']}), "
              f"IWAE k={args.k} {now['log_likelihood']:.3f} <= k={args.saved_k} {saved['log_likelihood']:.3f}; "
              f"{row['seconds']:.0f} s", flush=True)  # fmt: skip
    write_record("recheck-evaluations", args.device, {"machine": machine(args.device), "k": args.k,
                                                       "saved_k": args.saved_k, "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
