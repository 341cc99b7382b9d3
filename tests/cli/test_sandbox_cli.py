"""`flame-lab sandbox` rough edges: no silent no-op, no raw EOFError."""

from __future__ import annotations

import io

from flame_lab.cli import main
from flame_lab.sandbox import daemon


def test_node_data_for_an_existing_stopped_sandbox_is_refused_not_ignored(tmp_path, capsys):
    home = tmp_path / "sandbox"
    daemon.initialise(home, nodes=2)
    data = tmp_path / "csv"
    data.mkdir()
    (data / "t.csv").write_text("a\n1\n")
    code = main(["sandbox", "up", "--home", str(home), "--node-data", f"uk-aachen={data}"])
    err = capsys.readouterr().err
    assert code == 1 and "only applies when a sandbox is created" in err
    assert "sandbox reset" in err and daemon.running(home) is None


def test_reset_without_a_terminal_keeps_the_sandbox_and_names_yes(tmp_path, capsys, monkeypatch):
    home = tmp_path / "sandbox"
    daemon.initialise(home, nodes=2)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["sandbox", "reset", "--home", str(home)]) == 1
    assert "pass --yes" in capsys.readouterr().out
    assert daemon.is_initialised(home)
