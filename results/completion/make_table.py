"""Collect the image-completion runs into completion.json, completion.md and completion.png.

Reads each run's saved evaluation (``RUN/evaluate-k1000.json``, written by
``pyro-vae evaluate RUN --k 1000 --json``) and its ``commands.txt``; draws the figure from the
runs' weights. Run from the repository root:

    python results/completion/make_table.py results/completion/quadrants-1 results/completion/quadrants-2 results/completion/quadrants-3
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pyro_vae.completion import complete, completion_rows  # noqa: E402
from pyro_vae.data import load_dataset  # noqa: E402
from pyro_vae.plotting import displayed, sample_grid  # noqa: E402
from pyro_vae.runs import load_run  # noqa: E402

OUT = Path(__file__).parent
K = 1000
# Pyro's tutorial (pyro.ai/examples/cvae.html, tutorial/source/cvae.ipynb), its table of the test
# loss in nats: -ELBO with the recognition network for the CVAE, the masked BCE for the baseline,
# on grey (not binarized) target pixels.
PYRO_TUTORIAL = {1: (100.4, 71.8), 2: (61.9, 51.0), 3: (25.4, 24.2)}  # (baseline, CVAE)


def row(run_dir: Path) -> dict:
    evaluation = json.loads((run_dir / f"evaluate-k{K}.json").read_text())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((run_dir / "config.json").read_text())
    quadrants = evaluation["visible_quadrants"]
    cvae_epochs = [record["seconds"] for record in metrics if record["epoch"] > config["baseline_epochs"]]
    baseline_epochs = [record["seconds"] for record in metrics if record["epoch"] <= config["baseline_epochs"]]
    commands = (run_dir / "commands.txt").read_text().splitlines()
    return {
        "visible_quadrants": quadrants,
        "cvae_neg_elbo_grey": evaluation["cvae_neg_elbo_grey"],
        "baseline_nll_grey": evaluation["baseline_nll_grey"],
        "cvae_nll": evaluation["cvae_nll"],
        "cvae_nll_se": evaluation["log_likelihood_stderr"],
        "cvae_negative_elbo": -evaluation["elbo"],
        "baseline_nll": evaluation["baseline_nll"],
        "k": evaluation["k"],
        "command": commands[0],
        "run": str(run_dir),
        "epochs": config["epochs"],
        "baseline_epochs": config["baseline_epochs"],
        "seconds_per_cvae_epoch": statistics.median(cvae_epochs),
        "seconds_per_baseline_epoch": statistics.median(baseline_epochs),
        "train_seconds": sum(record["seconds"] for record in metrics),
        "pyro_tutorial_baseline": PYRO_TUTORIAL[quadrants][0],
        "pyro_tutorial_cvae": PYRO_TUTORIAL[quadrants][1],
    }


HEADER = """# Image completion: -log p(x_hidden | x_visible) on the 10,000 MNIST test images, nats per image

The first pair of columns is Pyro's tutorial's own metric, computed the tutorial's way, beside its
published figures: for the baseline, the deterministic network's masked cross-entropy against the grey
(not binarized) hidden pixels; for the CVAE, `Trace_ELBO(num_particles=10)` with the recognition network
q(z | x, c), the same grey targets. The baseline trains alone until its loss on a validation split (10,000
training images held out) stops improving for 3 epochs, as the tutorial's early stopping does on its test
split (`choose_baseline_epochs.py`, `baseline_epochs.json`). Source of the published figures: Pyro's
tutorial "Conditional Variational Auto-encoder" (pyro.ai/examples/cvae.html), its table of test losses.
Sohn et al. (2015), Table 1, could not be consulted from this machine (no copy in the stored sources), so
its figures are not quoted.

The next columns score binarized hidden pixels (the test set binarized once, seed 1234; training
binarizes afresh every epoch): the baseline's exact masked Bernoulli NLL, and for the CVAE the IWAE
bound with k=1000 draws from q(z | x, c) (a bound on the NLL that tightens with k) and the -ELBO (k=1).
Our networks see binarized visible pixels in both.

"""


def table(rows: list[dict]) -> str:
    lines = [
        "| visible quadrants | baseline, grey targets | CVAE -ELBO (10 particles), grey targets | Pyro tutorial: baseline / CVAE "
        "| baseline NLL, binarized | CVAE NLL (IWAE, k=1000), binarized | CVAE -ELBO (k=1), binarized | baseline epochs "
        "| seconds per CVAE epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['visible_quadrants']} | {r['baseline_nll_grey']:.2f} | **{r['cvae_neg_elbo_grey']:.2f}** | "
            f"{r['pyro_tutorial_baseline']} / {r['pyro_tutorial_cvae']} | {r['baseline_nll']:.2f} | "
            f"**{r['cvae_nll']:.2f}** +- {r['cvae_nll_se']:.2f} | {r['cvae_negative_elbo']:.2f} | {r['baseline_epochs']} | "
            f"{r['seconds_per_cvae_epoch']:.1f} |"
        )
    return "\n".join(lines) + "\n"


@torch.no_grad()
def figure(run_dirs: list[Path], path: Path, n: int = 6, draws: int = 5, seed: int = 0) -> None:
    """One panel per run: rows of input, truth, baseline and CVAE draws, the same test images."""
    panels = plt.figure(figsize=(5 * len(run_dirs), 5.2), constrained_layout=True).subplots(1, len(run_dirs), squeeze=False)[0]
    for panel, run_dir in zip(panels, run_dirs):
        run = load_run(run_dir, device="cpu")
        test = load_dataset("mnist", None, run.device, binarize=True).test
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(test), generator=generator)[:n]
        images, columns, _ = completion_rows(complete(run.vae, test.batch(index), draws, generator))
        images = displayed(images.reshape(images.shape[0], -1), run.config.image_shape)
        panel.imshow(sample_grid(images, columns), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        panel.set_title(f"{run.config.visible_quadrants} visible quadrant(s)")
        panel.set_xticks([28 * c + 13.5 for c in range(columns)], ["input", "truth", "baseline"] + [f"CVAE {d + 1}" for d in range(draws)],
                         rotation=45, fontsize=8)  # fmt: skip
        panel.set_yticks([])
    plt.gcf().suptitle("Completing test digits: input (hidden pixels grey), truth, the baseline network's mean, "
                       "and CVAE draws z ~ p(z | x_visible)", fontsize=10)  # fmt: skip
    plt.gcf().savefig(path, dpi=100, metadata={"Software": None})
    plt.close("all")


def main() -> None:
    run_dirs = [Path(argument) for argument in sys.argv[1:]]
    rows = sorted((row(run_dir) for run_dir in run_dirs), key=lambda r: r["visible_quadrants"])
    (OUT / "completion.json").write_text(json.dumps(rows, indent=2) + "\n")
    (OUT / "completion.md").write_text(HEADER + table(rows))
    figure([Path(r["run"]) for r in rows], OUT / "completion.png")
    print(table(rows))


if __name__ == "__main__":
    main()
