"""Choose each completion run's baseline epochs on the validation split, as Pyro's tutorial does on
its test split: train the baseline alone, watch its held-out loss after every epoch, stop once it has
not improved for ``PATIENCE`` epochs in a row, and keep the best epoch.

Pyro's tutorial waits 3 epochs. On our validation curve that stops at epoch 16 (1 visible quadrant:
106.82 nats) while the loss still falls to 105.68 by epoch 40, a step of a few tenths of a nat
between noisy epochs; we wait 10, so that the baseline is not cut short (a weaker baseline would flatter
the CVAE beside it).

Reads the ``metrics.jsonl`` of the validation runs (``pyro-vae train --visible-quadrants Q
--validation 10000 --baseline-epochs 40 --epochs 41``; see each run's ``commands.txt``), writes
``baseline_epochs.json`` beside this file and prints one line per run. Run from the repository root:

    python results/completion/choose_baseline_epochs.py results/completion/validation-q1 results/completion/validation-q2 results/completion/validation-q3
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).parent
PATIENCE = 10  # Pyro's examples/cvae waits 3 (early_stop_patience=3); see above


def best_epoch(losses: list[float], patience: int = PATIENCE) -> tuple[int, bool]:
    """The 1-based epoch of the lowest loss seen before ``patience`` epochs in a row failed to lower
    it, and whether that stop was reached within the epochs recorded."""
    best, waited = 0, 0
    for epoch in range(1, len(losses)):
        if losses[epoch] < losses[best]:
            best, waited = epoch, 0
        else:
            waited += 1
            if waited == patience:
                return best + 1, True
    return best + 1, False


def choose(run_dir: Path) -> dict:
    config = json.loads((run_dir / "config.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [record["val_baseline_nll"] for record in records if record["epoch"] <= config["baseline_epochs"]]
    epoch, stopped = best_epoch(losses)
    return {
        "visible_quadrants": config["visible_quadrants"],
        "baseline_epochs": epoch,
        "val_baseline_nll": losses[epoch - 1],
        "stopped_early": stopped,
        "epochs_watched": len(losses),
        "patience": PATIENCE,
        "run": str(run_dir),
    }


def main() -> None:
    rows = sorted((choose(Path(argument)) for argument in sys.argv[1:]), key=lambda r: r["visible_quadrants"])
    (OUT / "baseline_epochs.json").write_text(json.dumps(rows, indent=2) + "\n")
    for r in rows:
        print(f"{r['visible_quadrants']} visible quadrant(s): {r['baseline_epochs']} baseline epochs "
              f"(validation NLL {r['val_baseline_nll']:.3f}; stopped early: {r['stopped_early']})")


if __name__ == "__main__":
    main()
