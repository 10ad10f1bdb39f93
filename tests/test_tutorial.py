"""docs/tutorial.ipynb runs from top to bottom on a python3 kernel (nbclient), on real MNIST; any
error in any cell fails the test. Its outputs are not committed, so what it shows is always what the
code does today."""

from __future__ import annotations

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_the_tutorial_notebook_runs_without_an_error(tmp_path, data_root, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "docs" / "tutorial.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), "commit the tutorial without outputs"
    monkeypatch.setenv("PYRO_VAE_DATA", str(data_root))
    monkeypatch.setenv("PYRO_VAE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [output for cell in notebook.cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert not errors
    printed = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "largest difference to the formula" in printed and "k = 100" in printed, printed
    assert len(list((tmp_path / "runs").iterdir())) == 2  # the VAE and the conditional VAE
