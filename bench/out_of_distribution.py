"""Out-of-distribution detection with a trained run's scores (pyro_vae/outliers.py): each score's
AUROC for telling outliers from the run's own test images, the scores' histograms, and what each
costs per 1,000 images.

    python bench/out_of_distribution.py choose   # validation: the codec and the regret's steps and step size
    python bench/out_of_distribution.py test     # the two pairs on the test splits -> results/out-of-distribution/

``choose`` reads only training images: the Fashion-MNIST run's validation split (held out of its
training) as inliers and MNIST training digits as outliers. ``test`` scores the test splits once with
the chosen settings: Fashion-MNIST -> MNIST (the run of results/out-of-distribution/fashion-vae) and
MNIST -> Fashion-MNIST (results/default-vae).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pyro_vae.data import load_data
from pyro_vae.codecs import codec_bits
from pyro_vae.outliers import auroc, complexity
from pyro_vae.per_image import load_source, score
from pyro_vae.runs import load_run

OUT = Path("results/out-of-distribution")
FASHION_RUN, MNIST_RUN = OUT / "fashion-vae", Path("results/default-vae")
CHOICE = OUT / "choice.json"
# What the papers report for Fashion-MNIST (in) against MNIST (out), with their models; only what
# could be checked is quoted
PUBLISHED = {
    "nll": "below 0.5: MNIST scores as more likely (Nalisnick et al. 2019, Glow, PixelCNN, VAE; shown as histograms)",
    "complexity": "(Serra et al. 2020 score Glow and PixelCNN++ models; their table is not restated here)",
    "regret": "about 0.99 (VAE; Xiao et al. 2020, who re-fit the encoder's weights per image)",
}


def scores_of(run, split, settings: dict, seconds: dict | None = None) -> dict[str, np.ndarray]:
    """nll, complexity-{codec} for each codec, and regret if the settings give its (steps, lr)."""
    result = {}
    if settings["codecs"]:
        result["nll"] = score(run, split, k=settings["k"], scores=("nll",), seconds=seconds)["nll"]
    for codec in settings["codecs"]:
        started = time.perf_counter()
        bits = codec_bits(split.floats(), run.config.image_shape, codec)
        result[f"complexity-{codec}"] = complexity(result["nll"], bits)
        if seconds is not None:
            seconds[f"complexity-{codec}"] = time.perf_counter() - started
    if settings.get("regret"):
        steps, lr = settings["regret"]
        regret_seconds = {}  # the k=1 bound it also computes is not the nll's time
        result["regret"] = score(run, split, k=1, scores=("regret",), regret_steps=steps, regret_lr=lr,
                                 seconds=regret_seconds)["regret"]  # fmt: skip
        if seconds is not None:
            seconds["regret"] = regret_seconds["regret"]
    return result


def choose(count: int) -> None:
    run = load_run(FASHION_RUN, device="cpu")
    inliers = load_data(run.config, run.device).validation.take(torch.arange(count))
    outliers = load_source(run, "mnist", "train")[0].take(torch.arange(count))
    grid = {"codecs": ["png", "webp"], "k": 100}
    aurocs = {}
    base_in, base_out = scores_of(run, inliers, grid), scores_of(run, outliers, grid)
    aurocs.update({name: auroc(base_in[name], base_out[name]) for name in base_in})
    for steps, lr in ((10, 0.1), (20, 0.1), (50, 0.1), (100, 0.1), (20, 0.03), (50, 0.03)):
        settings = {"codecs": [], "k": 1, "regret": (steps, lr)}
        regret_in, regret_out = scores_of(run, inliers, settings)["regret"], scores_of(run, outliers, settings)["regret"]
        aurocs[f"regret steps={steps} lr={lr}"] = auroc(regret_in, regret_out)
        print(f"regret {steps} steps, lr {lr}: AUROC {aurocs[f'regret steps={steps} lr={lr}']:.4f}", flush=True)
    record = {"inliers": f"{count} images of {FASHION_RUN}'s validation split (Fashion-MNIST training images)",
              "outliers": f"the first {count} MNIST training digits", "k": 100, "auroc": aurocs}  # fmt: skip
    CHOICE.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(aurocs, indent=1))


def test(settings: dict) -> None:
    pairs = [("fashion-mnist -> mnist", FASHION_RUN, "fashion-mnist", "mnist"),
             ("mnist -> fashion-mnist", MNIST_RUN, "mnist", "fashion-mnist")]  # fmt: skip
    record = {"machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}",
              "settings": settings, "published_fashion_to_mnist": PUBLISHED, "pairs": {}}  # fmt: skip
    histograms = {}
    for name, run_dir, inside, outside in pairs:
        run = load_run(run_dir, device="cpu")
        seconds = {}
        started = time.perf_counter()
        inliers = scores_of(run, load_source(run, inside, "test")[0], settings, seconds)
        outliers = scores_of(run, load_source(run, outside, "test")[0], settings)
        per_thousand = {score_name: 1000 * value / 10000 for score_name, value in seconds.items()}
        record["pairs"][name] = {
            "run": str(run_dir), "inliers": f"{inside} test (10,000)", "outliers": f"{outside} test (10,000)",
            "auroc": {score_name: auroc(inliers[score_name], outliers[score_name]) for score_name in inliers},
            "means": {score_name: [float(inliers[score_name].mean()), float(outliers[score_name].mean())] for score_name in inliers},
            "seconds_per_1000_images": per_thousand, "seconds": time.perf_counter() - started,
        }  # fmt: skip
        histograms[name] = (inliers, outliers, inside, outside)
        print(name, json.dumps(record["pairs"][name]["auroc"]), flush=True)
    (OUT / "auroc.json").write_text(json.dumps(record, indent=1) + "\n")
    (OUT / "auroc.md").write_text(table(record))
    figure(histograms, OUT / "histograms.png")


def table(record: dict) -> str:
    names = list(next(iter(record["pairs"].values()))["auroc"])
    lines = ["| score | " + " | ".join(record["pairs"]) + " | published (Fashion-MNIST -> MNIST) |", "|---" * (len(record["pairs"]) + 2) + "|"]
    for name in names:
        published = record["published_fashion_to_mnist"].get(name.split("-")[0], "")
        lines.append(f"| {name} | " + " | ".join(f"{pair['auroc'][name]:.4f}" for pair in record["pairs"].values()) + f" | {published} |")
    return "AUROC, outliers against the run's own test images (1: every outlier scores higher)\n\n" + "\n".join(lines) + "\n"


def figure(histograms: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(histograms.values()))[0])
    fig, axes = plt.subplots(len(histograms), len(names), figsize=(3.2 * len(names), 2.8 * len(histograms)), squeeze=False)
    for row, (pair, (inliers, outliers, inside, outside)) in enumerate(histograms.items()):
        for column, name in enumerate(names):
            axis = axes[row][column]
            both = np.concatenate([inliers[name], outliers[name]])
            bins = np.linspace(*np.percentile(both, [0.5, 99.5]), 60)
            axis.hist(inliers[name], bins=bins, alpha=0.6, label=f"{inside} (in)", density=True)
            axis.hist(outliers[name], bins=bins, alpha=0.6, label=f"{outside} (out)", density=True)
            axis.set_title(f"{name}, AUROC {auroc(inliers[name], outliers[name]):.3f}", fontsize=9)
            axis.tick_params(labelsize=7)
            if column == 0:
                axis.set_ylabel(f"trained on {inside}", fontsize=8)
                axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["choose", "test", "table"], help="table: auroc.md again from auroc.json")
    parser.add_argument("--count", type=int, default=2000, help="choose: images of each set")
    parser.add_argument("--codecs", nargs="+", default=["png", "webp"])
    parser.add_argument("--regret", type=float, nargs=2, default=None, metavar=("STEPS", "LR"))
    args = parser.parse_args()
    if args.stage == "choose":
        choose(args.count)
    elif args.stage == "table":
        record = {**json.loads((OUT / "auroc.json").read_text()), "published_fashion_to_mnist": PUBLISHED}
        (OUT / "auroc.json").write_text(json.dumps(record, indent=1) + "\n")
        (OUT / "auroc.md").write_text(table(record))
    else:
        regret = (int(args.regret[0]), args.regret[1]) if args.regret else None
        test({"codecs": args.codecs, "k": 100, "regret": regret})


if __name__ == "__main__":
    sys.exit(main())
