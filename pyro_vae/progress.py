"""A one-line progress bar on stderr: running ELBO and time left. Silent when stderr is no terminal."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, label: str, enabled: bool = True, stream=None, min_interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.label = label
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.min_interval = min_interval

    def update(self, done: int, total: int, running_elbo: float) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last_draw < self.min_interval and done < total):
            return
        self.last_draw = now
        elapsed = now - self.start
        left = elapsed / done * (total - done)
        width = 30
        filled = int(width * done / total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {done}/{total} elbo {running_elbo:8.2f} "
            f"{elapsed:5.1f}s elapsed, {left:5.1f}s left"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
