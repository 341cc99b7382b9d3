"""notebooks/01-getting-started.ipynb runs top to bottom against the sandbox, magics only."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.kernel.conftest import PASSPHRASE

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01-getting-started.ipynb"


def test_the_getting_started_notebook_uses_only_magics():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[0] == "%load_ext flame_lab"
    assert all(src.startswith("%") for src in code)


def test_the_getting_started_notebook_runs_against_the_sandbox(sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("FLAME_LAB_HOME", str(sandbox))
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", PASSPHRASE)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", output
            texts.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
    joined = "\n".join(texts)
    assert "flame_lab 0.1.0: federation 'sandbox' (local)" in joined
    assert "Result: {'mean_age':" in joined
    assert "{'mean_age':" in str(nb.cells[-1].outputs)
    assert PASSPHRASE not in joined


@pytest.mark.parametrize("name", ["01-getting-started.ipynb"])
def test_example_notebooks_are_stored_with_their_outputs(name):
    nb = nbformat.read(NOTEBOOK.parent / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("outputs") for c in code), "run the notebook and save it with outputs"
