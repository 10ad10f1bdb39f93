"""--track mlflow: a run read back through MLflow's own client (parameters, per-epoch metrics, the
figures and the evaluation as artifacts), resumed into the same MLflow run. --track tensorboard is
checked in test_figures.py."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, run_here

pytestmark = pytest.mark.slow


def test_mlflow_run_holds_the_config_each_epoch_the_figures_and_the_evaluation(tmp_path, data_root, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # the current MLflow's own default, no opt-in
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    env = {"PYRO_VAE_DATA": str(data_root), "MLFLOW_TRACKING_URI": ""}  # unset: ./mlflow.db
    train = ["train", "--epochs", "1", "--hidden-dims", "64", "--z-dim", "4", "--subset", "1000",
             "--device", "cpu", "--quiet", "--out", "run", "--track", "mlflow"]  # fmt: skip
    first = run_here(*train, env_extra=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    address = json.loads((tmp_path / "run" / "mlflow.json").read_text())
    assert (tmp_path / "mlflow.db").is_file()  # MLflow's default SQLite store, in the folder the command ran in
    assert address["tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    resumed = run_here("train", "--resume", "run", "--epochs", "2", "--track", "mlflow", "--no-plot",
                       env_extra=env, cwd=tmp_path)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    evaluated = run_here("evaluate", "run", "--k", "3", "--no-fid", "--device", "cpu", env_extra=env, cwd=tmp_path)
    assert evaluated.returncode == 0 and "logged to the run's MLflow run" in evaluated.stdout, evaluated.stderr

    monkeypatch.chdir(tmp_path)
    client = MlflowClient()  # what a notebook started in that folder gets, with no URI given
    run = client.get_run(address["run_id"])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["z_dim"] == "4" and run.data.params["hidden_dims"] == "[64]"
    assert run.data.params["elbo"] == "analytic"  # the value the run took, not "unset"
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_elbo", "test_elbo", "seconds"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [(point.step, point.value) for point in history] == [
            (record["epoch"], pytest.approx(record[key])) for record in records
        ]
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "metrics.jsonl", "figures", "evaluate-k3-seed0.json"} <= artifacts
    figures = {item.path for item in client.list_artifacts(run.info.run_id, "figures")}
    assert "figures/reconstructions.png" in figures, figures
    evaluation = json.loads(open(client.download_artifacts(run.info.run_id, "evaluate-k3-seed0.json", str(tmp_path))).read())
    logged = client.get_metric_history(run.info.run_id, "eval/log_likelihood")
    assert [(point.step, point.value) for point in logged] == [(3, pytest.approx(evaluation["log_likelihood"]))]


def test_tracking_without_its_package_is_one_line_before_any_training(tmp_path):
    """A tracker whose package is missing stops the command at once (here MLflow hidden from Python)."""
    (tmp_path / "mlflow").mkdir()
    (tmp_path / "mlflow" / "__init__.py").write_text("raise ImportError('hidden for this test')\n")
    result = run_cli("train", "--track", "mlflow", "--out", tmp_path / "r", env_extra={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "pip install 'pyro-vae[mlflow]'" in result.stderr
    assert not (tmp_path / "r").exists()
