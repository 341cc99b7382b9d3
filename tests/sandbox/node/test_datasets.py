"""A node's data folder: synthetic or the user's own; refusals name the offending file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flame_lab.errors import FlameLabError, NodeDataError
from flame_lab.sandbox.node.datasets import NodeData
from flame_lab.sandbox.node.synthetic import generate, write

CSV = b"id,age,diabetes\n1,50,0\n2,61,1\n3,70,1\n"


def _bundle(*resources: dict) -> str:
    return json.dumps(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": f"urn:x:{r['id']}", "resource": r} for r in resources],
        }
    )


def _patient(pid: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female"}


def test_a_written_synthetic_site_loads_back_whole(tmp_path):
    site = generate("uk-bonn", n_patients=60)
    data = NodeData.load(write(site, tmp_path / "node"))
    assert data.record_count == 60
    assert data.s3 == site.tables
    assert data.fhir.counts() == {k: len(v) for k, v in sorted(site.resources.items())}
    assert data.fhir.search("Patient?_count=100")["total"] == 60


def test_from_site_needs_no_folder():
    site = generate("uk-bonn", n_patients=30)
    data = NodeData.from_site(site)
    assert data.record_count == 30 and data.folder is None
    assert data.s3_objects(["patients.csv"]) == site.tables


def test_a_flat_user_folder_of_csv_files(tmp_path):
    (tmp_path / "cohort.csv").write_bytes(CSV)
    (tmp_path / "labs.csv").write_bytes(b"id,hba1c\n1,6.1\n")
    data = NodeData.load(tmp_path)
    assert set(data.s3) == {"cohort.csv", "labs.csv"}
    assert data.record_count == 3  # no Patients: rows of the largest table
    assert data.fhir.counts() == {}


def test_a_flat_folder_mixing_fhir_csv_and_other_json(tmp_path):
    (tmp_path / "patients.json").write_text(_bundle(_patient("a"), _patient("b")))
    (tmp_path / "more.ndjson").write_text(json.dumps(_patient("c")) + "\n\n")
    (tmp_path / "cohort.csv").write_bytes(CSV + b"4,33,0\n5,41,0\n")
    (tmp_path / "config.json").write_text('{"threshold": 3}')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("hello")
    data = NodeData.load(tmp_path)
    assert data.fhir.counts() == {"Patient": 3}
    assert data.record_count == 3  # Patients win over table rows
    assert set(data.s3) == {"cohort.csv", "config.json", "sub/notes.txt"}


def test_a_single_resource_json_file_is_fhir(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps(_patient("solo")))
    assert NodeData.load(tmp_path).fhir.counts() == {"Patient": 1}


def test_hidden_files_are_skipped(tmp_path):
    (tmp_path / "cohort.csv").write_bytes(CSV)
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    assert set(NodeData.load(tmp_path).s3) == {"cohort.csv"}


def test_summary_shows_counts_and_columns_but_no_values(tmp_path):
    (tmp_path / "patients.json").write_text(_bundle(_patient("secret-id-1")))
    (tmp_path / "cohort.csv").write_bytes(CSV)
    (tmp_path / "model.bin").write_bytes(b"12345")
    summary = NodeData.load(tmp_path).summary()
    assert summary == {
        "record_count": 1,
        "fhir": {"Patient": 1},
        "tables": {"cohort.csv": {"rows": 3, "columns": ["id", "age", "diabetes"]}},
        "files": {"model.bin": 5},
    }
    assert "secret-id-1" not in json.dumps(summary)


def test_s3_objects_returns_all_or_exactly_the_keys_asked(tmp_path):
    (tmp_path / "a.csv").write_bytes(CSV)
    (tmp_path / "b.csv").write_bytes(CSV)
    data = NodeData.load(tmp_path)
    assert set(data.s3_objects()) == {"a.csv", "b.csv"}
    assert set(data.s3_objects(["b.csv"])) == {"b.csv"}
    assert set(data.s3_objects("a.csv")) == {"a.csv"}


def test_an_unknown_s3_key_is_refused_listing_the_available(tmp_path):
    (tmp_path / "a.csv").write_bytes(CSV)
    with pytest.raises(NodeDataError, match=r"nope\.csv") as info:
        NodeData.load(tmp_path).s3_objects(["nope.csv"])
    assert "a.csv" in info.value.hint


def test_a_symlink_pointing_outside_the_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes(CSV)
    node = tmp_path / "node"
    node.mkdir()
    (node / "link.csv").symlink_to(outside)
    with pytest.raises(NodeDataError, match="outside") as info:
        NodeData.load(node)
    assert "link.csv" in info.value.message


def test_a_symlinked_folder_pointing_outside_is_refused(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "x.csv").write_bytes(CSV)
    node = tmp_path / "node"
    (node / "s3").mkdir(parents=True)
    (node / "s3" / "escape").symlink_to(tmp_path / "secrets")
    with pytest.raises(NodeDataError, match="outside"):
        NodeData.load(node)


def test_a_structured_subfolder_symlinked_outside_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.csv").write_bytes(CSV)
    node = tmp_path / "node"
    node.mkdir()
    (node / "s3").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NodeDataError, match="outside"):
        NodeData.load(node)


def test_a_symlink_inside_the_folder_is_followed(tmp_path):
    (tmp_path / "real.csv").write_bytes(CSV)
    (tmp_path / "alias.csv").symlink_to(tmp_path / "real.csv")
    assert NodeData.load(tmp_path).s3["alias.csv"] == CSV


def test_a_dangling_symlink_is_an_unreadable_file(tmp_path):
    (tmp_path / "gone.csv").symlink_to(tmp_path / "missing.csv")
    with pytest.raises(NodeDataError, match="Cannot read") as info:
        NodeData.load(tmp_path)
    assert "gone.csv" in info.value.message


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    (tmp_path / "locked.csv").write_bytes(CSV)
    real_read = Path.read_bytes

    def deny(self):  # tests run as root here, where chmod 000 would not stop a read
        if self.name == "locked.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(NodeDataError, match="Permission denied") as info:
        NodeData.load(tmp_path)
    assert "locked.csv" in info.value.message and "permissions" in info.value.hint


def test_a_special_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(NodeDataError, match="not a regular file"):
        NodeData.load(tmp_path)


def test_malformed_json_names_the_file_and_line(tmp_path):
    (tmp_path / "broken.json").write_text('{\n  "resourceType": "Bundle",\n  oops\n}')
    with pytest.raises(NodeDataError, match="not valid JSON") as info:
        NodeData.load(tmp_path)
    assert "broken.json" in info.value.message and "line 3" in info.value.message


def test_malformed_ndjson_names_the_line(tmp_path):
    (tmp_path / "bulk.ndjson").write_text(json.dumps(_patient("a")) + "\n{bad\n")
    with pytest.raises(NodeDataError, match="line 2"):
        NodeData.load(tmp_path)


def test_non_fhir_json_in_the_fhir_folder_is_refused(tmp_path):
    (tmp_path / "fhir").mkdir()
    (tmp_path / "fhir" / "x.json").write_text('{"hello": 1}')
    with pytest.raises(NodeDataError, match="not a FHIR resource"):
        NodeData.load(tmp_path)


def test_other_files_in_the_fhir_folder_are_refused(tmp_path):
    (tmp_path / "fhir").mkdir()
    (tmp_path / "fhir" / "readme.txt").write_text("hi")
    with pytest.raises(NodeDataError, match=r"readme\.txt"):
        NodeData.load(tmp_path)


def test_a_bundle_entry_without_a_resource_is_refused(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps({"resourceType": "Bundle", "entry": [{}]}))
    with pytest.raises(NodeDataError, match="entry 0"):
        NodeData.load(tmp_path)


def test_duplicate_resources_are_refused_naming_both_files(tmp_path):
    (tmp_path / "one.json").write_text(_bundle(_patient("a")))
    (tmp_path / "two.json").write_text(_bundle(_patient("a")))
    with pytest.raises(NodeDataError, match="Patient/a") as info:
        NodeData.load(tmp_path)
    assert "one.json" in info.value.message and "two.json" in info.value.message


def test_a_missing_or_empty_folder_is_refused(tmp_path):
    with pytest.raises(NodeDataError, match="does not exist"):
        NodeData.load(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NodeDataError, match="no data files"):
        NodeData.load(tmp_path / "empty")


def test_node_data_errors_belong_to_the_one_error_tree():
    assert issubclass(NodeDataError, FlameLabError)
