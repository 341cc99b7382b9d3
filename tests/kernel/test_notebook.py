"""What nbval cannot say about the example notebooks (nbval runs them: notebooks/conftest.py).

nbval executes every notebook in notebooks/ top to bottom against a sandbox and compares the
outputs of the cells tagged ``nbval-check-output``; these tests read the stored notebooks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from tests.kernel.conftest import PASSPHRASE

FOLDER = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(p.name for p in FOLDER.glob("*.ipynb"))
EXPECTED = [
    "01-getting-started.ipynb",
    "02-fhir-cohort-statistics.ipynb",
    "03-iterative-logistic-regression.ipynb",
    "04-differential-privacy.ipynb",
    "05-approval-and-failures.ipynb",
    "06-real-flame-hub.ipynb",
]
CHECK_TAG = "nbval-check-output"
RAISES_TAGS = {"raises-exception", "nbval-raises-exception"}


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(FOLDER / name, as_version=4)


def _code(name: str) -> list[nbformat.NotebookNode]:
    return [c for c in _read(name).cells if c.cell_type == "code"]


def _tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def test_every_example_notebook_is_there():
    assert NOTEBOOKS == EXPECTED


def test_the_getting_started_notebook_uses_only_magics():
    code = [c.source for c in _code("01-getting-started.ipynb")]
    assert code[0] == "%load_ext flame_lab"
    assert all(src.startswith("%") for src in code)


@pytest.mark.parametrize("name", EXPECTED)
def test_example_notebooks_are_stored_with_their_outputs(name):
    code = _code(name)
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), "run it top to bottom, save it with outputs"
    assert all(c.get("outputs") for c in code if CHECK_TAG in _tags(c))


@pytest.mark.parametrize("name", EXPECTED)
def test_every_notebook_loads_flame_lab_and_checks_some_outputs_exactly(name):
    code = _code(name)
    assert code[0].source == "%load_ext flame_lab"
    assert CHECK_TAG in _tags(code[0])
    assert sum(CHECK_TAG in _tags(c) for c in code) >= 2


@pytest.mark.parametrize("name", EXPECTED)
def test_only_cells_marked_to_raise_stored_an_error_and_it_is_a_flame_lab_message(name):
    for cell in _code(name):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if RAISES_TAGS & _tags(cell):
            assert errors, f"a cell marked to raise did not: {cell.source!r}"
            assert all("Hint:" in o.evalue for o in errors), "errors say what to do next"
            assert all(len(o.traceback) == 1 for o in errors), "a message, not a traceback"
        else:
            assert not errors, f"unexpected error in {cell.source!r}"


@pytest.mark.parametrize("name", EXPECTED)
def test_no_secret_is_stored_in_a_notebook(name):
    text = json.dumps([c.get("outputs", []) for c in _code(name)])
    assert PASSPHRASE not in text
    assert "example notebooks, throwaway identity" not in text  # notebooks/conftest.py
    assert not re.search(r"password\W{0,6}[:=]", text, re.IGNORECASE)
    assert "BEGIN PRIVATE KEY" not in text and "clientSecret" not in text


def test_the_real_hub_notebook_logs_in_through_the_hub_api_not_the_sandbox_path():
    sources = "\n".join(c.source for c in _code("06-real-flame-hub.ipynb"))
    for keyword in ("core_url=", "auth_url=", "storage_url=", "user=", "password="):
        assert keyword in sources
    outputs = json.dumps([c.get("outputs", []) for c in _code("06-real-flame-hub.ipynb")])
    assert "sandbox code path: False" in outputs


def test_the_readme_describes_every_notebook():
    readme = (FOLDER / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in EXPECTED)


MACHINE_SPECIFIC = (
    re.compile(r"Key id:\s+([0-9a-f]{4} ){7}[0-9a-f]{4}"),  # the runner's own key id
    re.compile(r"/tmp/|/var/folders/|flame-lab-nbexec|flame-lab-notebooks-"),  # temp paths
)


@pytest.mark.parametrize("name", EXPECTED)
def test_stored_outputs_carry_no_machine_specific_key_id_or_temp_path(name):
    text = json.dumps([c.get("outputs", []) for c in _code(name)])
    for pattern in MACHINE_SPECIFIC:
        found = pattern.search(text)
        assert found is None, f"{name} stores {found.group(0)!r}: re-run with notebooks/rerun.py"
