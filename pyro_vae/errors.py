"""The exceptions the CLI turns into one line and a non-zero exit (no torch here: the CLI imports
this module before it knows which command runs)."""

from pathlib import Path


class PyroVAEError(Exception):
    """A problem the user can fix (bad input, missing data, unusable checkpoint).

    The message is written for the user: one line, saying what is wrong and what to do.
    """


class TrainingInterrupted(Exception):
    """Ctrl-C during training: the last complete checkpoint is kept and the run can be resumed."""

    def __init__(self, run_dir: Path, completed_epochs: int):
        super().__init__(f"interrupted after {completed_epochs} complete epoch(s)")
        self.run_dir = run_dir
        self.completed_epochs = completed_epochs
