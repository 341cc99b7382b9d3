"""A sandbox node can hold the researcher's own CSV files instead of synthetic data."""

from __future__ import annotations

import pytest

import flame_lab as fl
from flame_lab.cli.lab import EXAMPLE
from flame_lab.errors import SandboxError
from flame_lab.sandbox import daemon
from flame_lab.security import keys
from flame_lab.star import ensure_importable

MEAN = EXAMPLE  # the mean-age analysis shipped with flame_lab
ensure_importable()


def test_node_data_replaces_one_nodes_synthetic_data(tmp_path, monkeypatch):
    own = tmp_path / "own-data"
    own.mkdir()
    rows = "\n".join(f"p{i},{age}" for i, age in enumerate([30, 40, 50, 60, 70, 80]))
    (own / "patients.csv").write_text("patient_id,age\n" + rows + "\n")
    home = tmp_path / "home"
    monkeypatch.setenv("FLAME_LAB_HOME", str(home))
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", "node data test")
    keys.save_identity(home / "keys" / "identity.json", keys.Identity.generate(), "node data test")
    daemon.up(home / "sandbox", node_data={"uk-aachen": own})
    try:
        fed = fl.connect()
        draft = fl.Draft.from_files({"mean_age.py": MEAN.read_text()}, entrypoint="mean_age.py")
        run = fed.submit(draft, nodes=["uk-aachen"])
        run.wait(timeout=90)
        assert run.result() == {"mean_age": 55.0, "n": 6}
    finally:
        daemon.down(home / "sandbox")


def test_node_data_for_an_unknown_node_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(SandboxError, match="unknown node 'atlantis'") as info:
        daemon.up(tmp_path / "sandbox", node_data={"atlantis": tmp_path})
    assert "uk-aachen" in info.value.hint
    assert daemon.running(tmp_path / "sandbox") is None
