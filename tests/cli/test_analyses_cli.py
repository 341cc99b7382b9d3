"""The terminal face of the workflow: submit, status, logs, result, cancel."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from flame_lab.cli import main
from flame_lab.cli.lab import EXAMPLE

MEAN = EXAMPLE  # the mean-age analysis shipped with flame_lab


@pytest.fixture
def analysis(in_sandbox, tmp_path):
    path = tmp_path / "mean_age.py"
    shutil.copy(MEAN, path)
    return path


def _submitted_id(out: str) -> str:
    return re.search(r"submitted ([0-9a-f-]{36})", out).group(1)


def test_submit_wait_prints_one_block_per_change_and_the_result(analysis, capsys):
    assert main(["submit", str(analysis), "--wait", "--name", "from the terminal"]) == 0
    out = capsys.readouterr().out
    assert "from the terminal" in out and ": executed" in out
    assert re.search(r"uk-aachen\s+approved\s+executed\s+100%", out)
    assert "'mean_age':" in out


def test_submitting_a_notebook_names_cells_that_define_the_same_file(in_sandbox, tmp_path, capsys):
    cell = "%%flame\n" + MEAN.read_text()
    cells = [{"cell_type": "code", "source": c, "metadata": {}} for c in (cell, cell)]
    notebook = tmp_path / "twice.ipynb"
    notebook.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4}))
    assert main(["submit", str(notebook)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "note: 2 cells define analysis.py (cell 1, cell 2): only the last of them (cell 2) "
        "counts.\n"
    )
    assert "submitted " in out


def test_status_lists_this_accounts_analyses_and_one_in_detail(analysis, capsys):
    main(["submit", str(analysis), "--wait"])
    analysis_id = _submitted_id(capsys.readouterr().out)
    assert main(["status"]) == 0
    assert analysis_id in capsys.readouterr().out
    assert main(["status", analysis_id, "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["overall"] == "executed"
    assert {n["name"] for n in detail["nodes"]} == {"uk-aachen", "uk-koeln", "aggregator"}


def test_logs_filter_by_node_and_result_writes_a_file(analysis, capsys, tmp_path):
    main(["submit", str(analysis), "--wait"])
    analysis_id = _submitted_id(capsys.readouterr().out)
    assert main(["logs", analysis_id, "--node", "uk-koeln"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all("uk-koeln" in line for line in lines)
    out = tmp_path / "result.json"
    assert main(["result", analysis_id, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n"] > 0


def test_errors_are_a_message_and_a_hint_not_a_traceback(analysis, capsys):
    assert main(["submit", str(analysis), "--nodes", "atlantis"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown node(s): atlantis")
    assert "hint: Known nodes:" in err and "Traceback" not in err
    assert main(["logs", "00000000-0000-0000-0000-000000000000"]) == 1
    assert "no submission record" in capsys.readouterr().err


def test_a_file_that_is_not_an_analysis_is_refused(in_sandbox, tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    assert main(["submit", str(broken)]) == 1
    assert "syntax error in broken.py, line 1" in capsys.readouterr().err


class _FakeRun:
    id = "a1"

    def logs(self, node=None, level=None, unlock=False):
        from flame_lab.federation import LogLine

        return [LogLine("1764723845123", "n1", "uk\x1b[2J", "info", "x\x1b]0;title\x07\u202ey")]


class _FakeFederation:
    def attach(self, analysis_id):
        return _FakeRun()


def test_logs_show_escape_sequences_from_an_analysis_and_clock_times(monkeypatch, capsys):
    from flame_lab.cli import analyses

    monkeypatch.setattr(analyses, "_connect", lambda args: _FakeFederation())
    assert main(["logs", "a1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;title\\x07\\u202ey" in out and "uk\\x1b[2J" in out
    assert out.startswith("2025-12-03 01:04:05  ")  # not epoch milliseconds


def test_data_prints_the_dictionary_as_text_and_json(in_sandbox, capsys):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "uk-aachen:" in out and "uk-koeln:" in out and "age" in out and "LOINC" in out
    assert main(["data", "uk-koeln", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["node"] for d in data["nodes"]] == ["uk-koeln"] and data["missing"] == []
    assert main(["data", "atlantis"]) == 1
    assert "hint: Data nodes: uk-aachen, uk-koeln" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["status"], ["logs", "an-1"], ["result", "an-1"], ["cancel", "an-1"], ["data"]],
    ids=lambda argv: argv[0],
)
def test_reading_commands_on_a_fresh_home_never_start_a_sandbox(argv, capsys):
    from flame_lab import config

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "the sandbox federation is not running" in err
    assert "Start it: `flame-lab sandbox up`" in err
    assert not config.sandbox_dir().exists()  # nothing created, nothing started
