"""The notebooks in ``examples/`` run top to bottom in a real Jupyter kernel (nbclient), as a researcher runs them:
no cell raises, and what each notebook says it shows is in its outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "examples").glob("*.ipynb"))


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, "examples/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_in_a_kernel(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("LTH_ROOT", str(tmp_path / "runs"))  # the notebook's store: a fresh one under the test's folder
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    data = [o.get("data", {}) for o in outputs if o.get("output_type") in ("execute_result", "display_data")]
    assert "\x1b[" not in text, "progress in a notebook is plain lines, without escape codes"
    assert "training a population" in text, "the study's progress reaches the notebook"
    assert any("text/html" in d for d in data), "a DataFrame is shown"
    assert any("image/png" in d for d in data), "a plot is drawn"
    store = tmp_path / "runs"
    assert list(store.rglob("done.json")), "runs were written to the store the notebook was given"
    if "ticket=" in "".join(c.source for c in nb.cells):  # a study on a ticket held as tensors: stored as a node
        assert list(store.glob("ticket_*/done.json"))
