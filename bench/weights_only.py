"""Rewrite a finished run's checkpoint without its optimizer and random-generator state, so that a
run that is to be committed stays under 20 MB: it still loads (evaluate, sample, plot, leaderboard,
--init-from) but can no longer be resumed exactly.

    python bench/weights_only.py results/vamp-iwae5
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyro_vae.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint


def main() -> None:
    path = Path(sys.argv[1]) / CHECKPOINT_NAME
    state = load_checkpoint(path)
    before = path.stat().st_size
    kept = {key: value for key, value in state.items() if key not in ("optimizer", "rng", "format_version")}
    save_checkpoint(path, kept)
    print(f"{path}: {before / 1e6:.1f} MB -> {path.stat().st_size / 1e6:.1f} MB (weights, config, counters, metrics)")


if __name__ == "__main__":
    main()
