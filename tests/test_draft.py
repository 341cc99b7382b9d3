"""A draft is what will be submitted: the same files from cells, notebooks or plain files."""

from __future__ import annotations

import json

import pytest

from flame_lab.draft import DEFAULT_ENTRYPOINT, Draft, parse_cell_header
from flame_lab.errors import DraftError

ANALYSIS = """\
from flame.star import StarModel, StarAnalyzer, StarAggregator
import helpers

class A(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)
    def analysis_method(self, data, aggregator_results):
        return helpers.mean([1, 2, 3])

class G(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)
    def aggregation_method(self, analysis_results):
        return sum(analysis_results) / len(analysis_results)
    def has_converged(self, result, last_result):
        return True

StarModel(analyzer=A, aggregator=G, data_type="s3", simple_analysis=True)
"""
HELPERS = "def mean(xs):\n    return sum(xs) / len(xs)\n"


def _notebook(*sources: str, kinds: tuple[str, ...] | None = None) -> dict:
    kinds = kinds or ("code",) * len(sources)
    return {
        "cells": [
            {"cell_type": kind, "source": src.splitlines(keepends=True), "metadata": {}}
            for kind, src in zip(kinds, sources, strict=True)
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_a_plain_flame_cell_is_the_entrypoint():
    assert parse_cell_header("%%flame") == parse_cell_header("  %%flame  ")
    header = parse_cell_header("%%flame")
    assert header.is_entrypoint and header.path == DEFAULT_ENTRYPOINT


def test_a_file_cell_is_an_extra_module():
    header = parse_cell_header("%%flame file lib/stats.py")
    assert not header.is_entrypoint and header.path == "lib/stats.py"


@pytest.mark.parametrize(
    "line",
    [
        "%%flame file ../escape.py",
        "%%flame file /etc/passwd.py",
        "%%flame file notes.txt",
        "%%flame file a\\b.py",
        "%%flame file .flame-lab/manifest.py",
        "%%flame bogus",
        "%%flame file",
    ],
)
def test_unusable_cell_headers_are_refused_with_a_hint(line):
    with pytest.raises(DraftError) as info:
        parse_cell_header(line)
    assert info.value.hint


def test_files_become_utf8_bytes_sorted_by_path():
    draft = Draft.from_files({"b.py": "x = 1\n", "a.py": b"y = 2\n"}, entrypoint="a.py")
    assert list(draft.files) == ["a.py", "b.py"]
    assert draft.files["b.py"] == b"x = 1\n"


def test_a_re_added_path_replaces_the_earlier_version():
    draft = Draft()
    draft.add_cell("%%flame file helpers.py", "v = 1\n")
    draft.add_cell("%%flame file helpers.py", "v = 2\n")
    assert draft.files == {"helpers.py": b"v = 2\n"}


def test_a_notebook_gives_its_flame_cells_in_order_and_ignores_the_rest():
    nb = _notebook(
        "%load_ext flame_lab",
        "%%flame file helpers.py\n" + HELPERS,
        "# a note",
        "%%flame\n" + ANALYSIS,
        kinds=("code", "code", "markdown", "code"),
    )
    draft = Draft.from_notebook(json.dumps(nb))
    assert set(draft.files) == {"helpers.py", "analysis.py"}
    assert draft.entrypoint == "analysis.py"
    assert draft.files["analysis.py"] == ANALYSIS.encode()
    draft.check()


def test_a_file_that_several_cells_define_is_named_with_the_cells_and_the_last_counts():
    nb = _notebook(
        "%%flame\n" + ANALYSIS.replace("[1, 2, 3]", "[1]"),
        "%%flame file helpers.py\n" + HELPERS,
        "%%flame\n" + ANALYSIS,
    )
    draft = Draft.from_notebook(json.dumps(nb))
    assert draft.files["analysis.py"] == ANALYSIS.encode()
    assert draft.overwritten_notes() == [
        "2 cells define analysis.py (cell 1, cell 3): only the last of them (cell 3) counts."
    ]
    once = Draft.from_notebook(json.dumps(_notebook("%%flame\n" + ANALYSIS)))
    assert once.overwritten_notes() == []


def test_a_notebook_without_flame_cells_is_refused_with_a_hint():
    with pytest.raises(DraftError, match="no %%flame cells") as info:
        Draft.from_notebook(_notebook("print(1)"))
    assert "%%flame" in info.value.hint


def test_something_that_is_not_a_notebook_is_refused():
    with pytest.raises(DraftError, match="not a notebook"):
        Draft.from_notebook({"hello": 1})


def test_syntax_errors_are_reported_with_the_cells_own_line_numbers():
    draft = Draft.from_cells([("cell 4", "%%flame\nx = 1\ny = (\n")])
    with pytest.raises(DraftError) as info:
        draft.check()
    # body line 2 is the cell's line 3, because the magic line is line 1
    assert "cell 4, line 3" in info.value.message


def test_syntax_errors_in_plain_files_name_the_file_and_line():
    draft = Draft.from_files({"analysis.py": "x = 1\nif True\n"})
    with pytest.raises(DraftError, match=r"analysis\.py, line 2"):
        draft.check()


def test_an_entrypoint_that_never_runs_starmodel_is_refused():
    draft = Draft.from_files({"analysis.py": "print('hello')\n"})
    with pytest.raises(DraftError, match="never calls StarModel") as info:
        draft.check()
    assert "StarLocalDPModel" in info.value.hint


def test_a_missing_module_is_named_with_its_line():
    draft = Draft.from_files(
        {"analysis.py": ANALYSIS.replace("import helpers", "import nosuchmod")}
    )
    with pytest.raises(DraftError, match=r"line 2: module 'nosuchmod' is not available"):
        draft.check()


def test_modules_of_the_draft_itself_the_stdlib_and_flame_count_as_present():
    draft = Draft.from_files(
        {"analysis.py": "import json, statistics\n" + ANALYSIS, "helpers.py": HELPERS}
    )
    draft.check()


def test_a_draft_without_its_entrypoint_is_refused():
    draft = Draft.from_files({"helpers.py": HELPERS})
    with pytest.raises(DraftError, match="no entrypoint"):
        draft.check()


def test_from_path_reads_python_files_and_notebooks(tmp_path):
    py = tmp_path / "mean.py"
    py.write_text(ANALYSIS.replace("import helpers\n", "").replace("helpers.mean([1, 2, 3])", "2"))
    draft = Draft.from_path(py)
    assert draft.entrypoint == "mean.py"
    draft.check()
    nb = tmp_path / "study.ipynb"
    nb.write_text(
        json.dumps(_notebook("%%flame\n" + ANALYSIS, "%%flame file helpers.py\n" + HELPERS))
    )
    assert set(Draft.from_path(nb).files) == {"analysis.py", "helpers.py"}


def test_from_path_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(DraftError, match="does not exist"):
        Draft.from_path(tmp_path / "nope.py")
    other = tmp_path / "data.csv"
    other.write_text("a,b\n")
    with pytest.raises(DraftError, match="neither"):
        Draft.from_path(other)


def test_non_utf8_files_are_refused():
    with pytest.raises(DraftError, match="not UTF-8"):
        Draft.from_files({"analysis.py": b"\xff\xfe"})


def test_bad_files_are_one_line_errors_with_a_hint(tmp_path):
    binary = tmp_path / "binary.ipynb"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    truncated = tmp_path / "cut.ipynb"
    truncated.write_text(json.dumps(_notebook("%%flame\n" + ANALYSIS))[:-40])
    cases = {
        binary: "is not a notebook: it is not UTF-8 text",
        truncated: "this notebook is damaged: its JSON ends or breaks at line",
        tmp_path: "is a folder, not a file",
    }
    for path, says in cases.items():
        with pytest.raises(DraftError) as caught:
            Draft.from_path(path)
        assert says in caught.value.message and "\n" not in caught.value.message
        assert caught.value.hint


@pytest.mark.parametrize("name", ["", "a\x00b.py", "../up.py", "/abs.py", "lib//x.py", "a\nb.py"])
def test_unusable_file_names_are_refused_as_draft_errors(name):
    with pytest.raises(DraftError, match="is not a usable file name"):
        Draft.from_files({name: "print(1)\n"}, entrypoint=name or "analysis.py")
