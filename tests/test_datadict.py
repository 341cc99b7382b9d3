"""The data dictionary says what can be asked, never who is in the data."""

from __future__ import annotations

import json

import pytest

from flame_lab import datadict
from flame_lab.datadict import DataDictionaryError, DatasetDescription
from flame_lab.privacy import NodePolicy
from flame_lab.sandbox.node import synthetic


@pytest.fixture(scope="module")
def site():
    return synthetic.generate("uk-aachen")


@pytest.fixture(scope="module")
def described(site):
    return datadict.describe(
        "uk-aachen",
        tables=site.tables,
        resources=site.resources,
        policy=NodePolicy().to_dict(),
        notes=synthetic.dictionary_notes(),
        record_count=site.record_count,
    )


def test_counts_are_bands_and_ranges_are_widened():
    assert [datadict.band(n) for n in (0, 3, 10, 542, 12_345)] == [
        "0",
        "1-9",
        "10-99",
        "100-999",
        "10 000-99 999",
    ]
    assert datadict.coarse_range(18, 93) == (10, 100)
    assert datadict.coarse_range(4.23, 12.71) == (4, 13)
    assert datadict.coarse_range(7, 7) == (7, 8)


def test_the_synthetic_table_is_described_with_types_units_and_value_sets(described, site):
    table = {t.name: t for t in described.tables}["patients.csv"]
    columns = {c.name: c for c in table.columns}
    assert list(columns) == list(synthetic.CSV_COLUMNS)
    assert columns["patient_id"].type == "identifier" and columns["patient_id"].values is None
    assert columns["age"].type == "integer" and columns["age"].unit == "a"
    assert columns["hba1c"].type == "number" and columns["hba1c"].unit == "%"
    assert columns["diabetes"].type == "boolean" and "E11.9" in columns["diabetes"].description
    assert "female" in columns["sex"].values
    assert table.records == described.records == datadict.band(site.record_count)
    assert {"ICD-10-GM", "LOINC"} <= set(described.code_systems)
    observation = {r.type: r for r in described.fhir}["Observation"]
    assert {"4548-4", "39156-5"} <= {c.code for c in observation.codes}
    assert {c.unit for c in observation.codes if c.code == "4548-4"} == {"%"}
    assert described.policy["disclosure"]["min_records"] == 5


def test_no_row_and_no_exact_count_leaves_the_node(described, site):
    text = json.dumps(described.to_dict()) + described.to_text() + described._repr_html_()
    rows = site.tables["patients.csv"].decode().splitlines()[1:]
    ids = [row.split(",")[0] for row in rows]
    assert not any(patient_id in text for patient_id in ids)
    assert f" {site.record_count} " not in text and f'"{site.record_count}"' not in text
    ages = [int(row.split(",")[1]) for row in rows]
    low, high = {c.name: c for c in described.tables[0].columns}["age"].range
    assert low <= min(ages) and high >= max(ages) and low % 10 == 0 and high % 10 == 0


def test_a_value_or_code_held_by_fewer_than_min_records_is_not_named():
    csv = b"id,ward\n" + b"".join(
        f"{i},{'A' if i < 8 else 'RAREWARD'}\n".encode() for i in range(9)
    )
    table = datadict.describe_table("t.csv", csv, min_records=5)
    ward = table.columns[1]
    assert ward.type == "category" and ward.values == ("A", "(rare values)")
    rare = [{"resourceType": "Condition", "code": {"coding": [{"system": "s", "code": "X99"}]}}]
    resources, _ = datadict.describe_fhir({"Condition": rare * 4}, min_records=5)
    assert resources[0].codes == () and resources[0].records == "1-9"


def test_a_description_read_from_the_network_round_trips_and_is_checked(described):
    assert DatasetDescription.from_dict(json.loads(json.dumps(described.to_dict()))) == described
    bad = described.to_dict()
    bad["tables"][0]["columns"][0]["name"] = "x" * 10_000
    with pytest.raises(DataDictionaryError, match="malformed"):
        DatasetDescription.from_dict(bad)
    for broken in ([], {"format": 99}, {**described.to_dict(), "tables": "no"}):
        with pytest.raises(DataDictionaryError):
            DatasetDescription.from_dict(broken)


def test_hostile_text_in_a_description_is_escaped_in_text_and_html(described):
    data = described.to_dict()
    data["tables"][0]["name"] = "<script>x</script>\x1b]0;t\x07\u202e"
    hostile = DatasetDescription.from_dict(data)
    assert "<script>" not in hostile._repr_html_() and "\u202e" not in hostile._repr_html_()
    assert "\x1b" not in hostile.to_text() and "\\x1b]0;t" in hostile.to_text()


def test_a_dictionary_of_nodes_names_the_undescribed_and_flattens_to_rows(described):
    d = datadict.DataDictionary([described], missing=["uk-koeln"])
    assert "Not described (yet): uk-koeln" in d.to_text()
    rows = d.columns()
    assert rows[0]["node"] == "uk-aachen" and {r["column"] for r in rows} >= {"age", "bmi"}
    assert list(d.to_frame().columns) == [
        "node",
        "table",
        "column",
        "type",
        "unit",
        "values",
        "rows",
    ]
    with pytest.raises(DataDictionaryError, match="Described nodes: uk-aachen"):
        d.node("atlantis")
