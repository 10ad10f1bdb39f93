"""Compare likelihoods and ELBO estimators with everything else equal: train (or reuse) one run per
variant, evaluate each, and write a table (Markdown and JSON) and a figure."""

from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import CHECKPOINT_NAME
from .config import Config, replace
from .likelihoods import SCORED
from .evaluation import evaluate
from .runs import load_run, read_metrics
from .training import train



def variant_name(config: Config) -> str:
    return f"{config.likelihood}-{config.elbo}"


def compare(base: Config, likelihoods, elbos, out: Path, k: int = 1000, echo=print) -> list[dict]:
    """One run per (likelihood, elbo) under ``out/runs``; a finished run with the same configuration
    is reused rather than retrained. Returns the evaluation records, also written to ``out``."""
    out = Path(out)
    records, runs = [], []
    for likelihood in likelihoods:
        for elbo in elbos:
            config = replace(base, likelihood=likelihood, elbo=elbo)
            run_dir = out / "runs" / variant_name(config)
            if _finished(run_dir, config):
                echo(f"{variant_name(config)}: reusing {run_dir}")
                run = load_run(run_dir, device=config.device)
            else:
                echo(f"{variant_name(config)}: training {config.epochs} epochs")
                run = train(config, out=_fresh(run_dir), quiet=True, echo=None)
            result = evaluate(run, k=k, data_dir=config.data_dir).to_dict()
            records.append({"variant": variant_name(config), "run": str(run_dir), **result})
            runs.append(run)
            echo(f"{variant_name(config)}: ELBO {result['elbo']:.2f}, IWAE {result['log_likelihood']:.2f} nats, "
                 f"{result['bits_per_dim']:.4f} bits/dim")  # fmt: skip
    (out / "compare.json").write_text(json.dumps(records, indent=1) + "\n")
    (out / "compare.md").write_text(markdown_table(records))
    from .plotting import compare_figure

    compare_figure(runs, records, out / "compare.png")
    return records


def _finished(run_dir: Path, config: Config) -> bool:
    if not (run_dir / CHECKPOINT_NAME).exists():
        return False
    try:
        existing = Config.load_json(run_dir / "config.json")
        # the fast and the classic step make the same updates, so either run will do; the shape and
        # classes of a path's images are known to the run, not yet to the asked config
        derived = {name: getattr(config, name) or getattr(existing, name) for name in ("image_shape", "class_names")}
        same = replace(existing, fast=config.fast) == replace(config, **derived)
        return same and len(read_metrics(run_dir)) == config.epochs
    except Exception:
        return False


def _fresh(run_dir: Path) -> Path:
    """An unfinished or different run in the variant's folder is moved aside, never overwritten."""
    if run_dir.exists():
        suffix = 1
        while run_dir.with_name(f"{run_dir.name}.old{suffix}").exists():
            suffix += 1
        run_dir.rename(run_dir.with_name(f"{run_dir.name}.old{suffix}"))
    return run_dir


def markdown_table(records: list[dict]) -> str:
    lines = [
        "| variant | test ELBO (nats) | IWAE log-likelihood (nats) | k | bits/dim | what the numbers measure |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['variant']} | {r['elbo']:.2f} | {r['log_likelihood']:.2f} ± {r['log_likelihood_stderr']:.2f} "
            f"| {r['k']} | {r['bits_per_dim']:.4f} | {SCORED[r['likelihood']][1]} |"
        )
    codecs = next((r for r in records if r.get("png_bits_per_dim") is not None), None)
    lines += [
        "",
        "Nats compare only between rows of the same likelihood. Bits/dim compare between the continuous",
        "likelihoods and the discretized logistic (the first two bound the probability of the 8-bit",
        "images through dequantization, the last gives it exactly); the Bernoulli rows model a different",
        "data set (binarized images) and compare with none of them.",
        *([] if codecs is None else [
            "",
            f"The lossless codecs on the same 8-bit test images, each image its own file: PNG "
            f"{codecs['png_bits_per_dim']:.4f} bits/dim, lossless WebP {codecs['webp_bits_per_dim']:.4f} (`pyro-vae evaluate`).",
        ]),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"
