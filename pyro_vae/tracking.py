"""Experiment trackers: ``on_epoch`` callbacks of :func:`pyro_vae.train` that log a run as it trains.

- ``TensorBoardTracker``: each epoch's ELBOs and seconds into ``RUN/tensorboard/``.
- ``MLflowTracker``: the configuration as parameters, each epoch's ELBOs and seconds as metrics (step =
  epoch), and at the end the run's figures, ``config.json`` and ``metrics.jsonl`` as artifacts, into
  MLflow's own default store, the SQLite database ``./mlflow.db`` (no server), unless ``MLFLOW_TRACKING_URI``
  names another store.
  The MLflow run's address is kept in ``RUN/mlflow.json``, so that ``--resume`` goes on logging into
  the same MLflow run and ``pyro-vae evaluate`` adds its JSON to it (``log_evaluation``).

From Python::

    tracker = MLflowTracker()
    run = train(Config(epochs=5), on_epoch=tracker)
    tracker.finish(run.path, plot_run(run))

Only rank 0 calls ``on_epoch`` under torchrun, so a distributed run is one MLflow run.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from .errors import PyroVAEError

TRACKERS = ("tensorboard", "mlflow")
MLFLOW_NAME = "mlflow.json"  # in the run directory: where its MLflow run lives
EXPERIMENT = "pyro-vae"  # MLflow experiment of every run, unless MLFLOW_EXPERIMENT_NAME names another


def _numbers(record: dict) -> dict[str, float]:
    """The numbers of a metrics.jsonl record or an evaluation, the epoch aside (it is the step)."""
    return {key: float(value) for key, value in record.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)}  # fmt: skip


class TensorBoardTracker:
    """Train, validation and test ELBO and seconds per epoch into RUN/tensorboard/."""

    def __init__(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise PyroVAEError("--track tensorboard needs the tensorboard package: "
                               "pip install 'pyro-vae[tensorboard]'") from None  # fmt: skip
        self.writer_class, self.writer = SummaryWriter, None

    def __call__(self, record: dict, vae, run_dir) -> None:
        if self.writer is None:
            self.writer = self.writer_class(log_dir=str(Path(run_dir) / "tensorboard"))
        for split in ("train", "val", "test"):
            if f"{split}_elbo" in record:
                self.writer.add_scalar(f"elbo/{split}", record[f"{split}_elbo"], record["epoch"])
        self.writer.add_scalar("seconds_per_epoch", record["seconds"], record["epoch"])
        self.writer.flush()

    def finish(self, run_dir, figures=()) -> None:
        if self.writer is not None:
            self.writer.close()


def _mlflow_client(tracking_uri: str | None = None):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise PyroVAEError("--track mlflow needs MLflow: pip install 'pyro-vae[mlflow]'") from None
    tracking_uri = tracking_uri or default_tracking_uri()
    if tracking_uri.startswith("sqlite:"):
        try:
            import alembic  # noqa: F401
            import sqlalchemy  # noqa: F401
        except ImportError:
            raise PyroVAEError("--track mlflow keeps its runs in SQLite (./mlflow.db), which needs SQLAlchemy and "
                               "Alembic: pip install 'pyro-vae[mlflow]'") from None  # fmt: skip
    return MlflowClient(tracking_uri)


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else MLflow's own default since 3.7: the SQLite database
    ``./mlflow.db`` (embedded, no server), which ``mlflow ui`` opens with no flags. Its absolute path
    is what ``RUN/mlflow.json`` keeps, so a resume from another folder logs into the same database."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


class MLflowTracker:
    """Parameters, per-epoch metrics and (``finish``) artifacts of one run into one MLflow run."""

    def __init__(self):
        self.client, self.run_id = _mlflow_client(), None

    def __call__(self, record: dict, vae, run_dir) -> None:
        from mlflow.entities import Metric

        if self.run_id is None:
            self.run_id = self._start(Path(run_dir), vae.config)
        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, record["epoch"]) for key, value in _numbers(record).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def _start(self, run_dir: Path, config) -> str:
        """The run's MLflow run: the one RUN/mlflow.json names (a resumed run), else a new one."""
        from mlflow.entities import Param

        kept = read_mlflow_address(run_dir)
        if kept is not None:
            self.client = _mlflow_client(kept["tracking_uri"])
            self.client.update_run(kept["run_id"], status="RUNNING")
            return kept["run_id"]
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(experiment_name)
        run = self.client.create_run(experiment_id, run_name=run_dir.name, tags={"pyro_vae.run_dir": str(run_dir)})
        params = [Param(key, json.dumps(value) if isinstance(value, (list, tuple)) else str(value))
                  for key, value in config.to_dict().items()]  # fmt: skip
        self.client.log_batch(run.info.run_id, params=params)
        address = {"tracking_uri": self.client.tracking_uri, "experiment_id": experiment_id,
                   "run_id": run.info.run_id}  # fmt: skip
        (run_dir / MLFLOW_NAME).write_text(json.dumps(address, indent=1) + "\n")
        return run.info.run_id

    def finish(self, run_dir, figures=()) -> None:
        """The run's record and figures as artifacts; the MLflow run ends as finished."""
        if self.run_id is None:  # no epoch ran in this call (a resume of a finished run)
            return
        run_dir = Path(run_dir)
        for name in ("config.json", "metrics.jsonl"):
            self.client.log_artifact(self.run_id, str(run_dir / name))
        for figure in figures:
            self.client.log_artifact(self.run_id, str(figure), artifact_path="figures")
        self.client.set_terminated(self.run_id)


def read_mlflow_address(run_dir) -> dict | None:
    """RUN/mlflow.json: the tracking URI and run id of the run's MLflow run, or None if untracked."""
    path = Path(run_dir) / MLFLOW_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def log_evaluation(run_dir, evaluation: dict, k: int, seed: int) -> str | None:
    """For a run trained with ``--track mlflow``: the evaluation's numbers as metrics (``eval/...``)
    and its JSON as the artifact ``evaluate-k{k}-seed{seed}.json``. Returns the artifact's name, None
    for an untracked run."""
    address = read_mlflow_address(run_dir)
    if address is None:
        return None
    client = _mlflow_client(address["tracking_uri"])
    name = f"evaluate-k{k}-seed{seed}.json"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(json.dumps(evaluation, indent=1) + "\n")
        client.log_artifact(address["run_id"], str(path))
    stamp = int(time.time() * 1000)
    for key, value in _numbers(evaluation).items():  # step k: evaluations at several k side by side
        client.log_metric(address["run_id"], f"eval/{key}", value, stamp, step=k)
    return name


class Trackers:
    """The trackers named (``--track tensorboard --track mlflow``) as one ``on_epoch`` callback, each
    made up front so that a missing package stops the command before any training."""

    def __init__(self, names):
        kinds = {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker}
        self.trackers = [kinds[name]() for name in dict.fromkeys(names)]

    def __call__(self, record: dict, vae, run_dir) -> None:
        for tracker in self.trackers:
            tracker(record, vae, run_dir)

    def finish(self, run_dir, figures=()) -> None:
        for tracker in self.trackers:
            tracker.finish(run_dir, figures)
