"""fed.datasets(): the sandbox's nodes describe their data through the hub, never a row."""

from __future__ import annotations

import pytest

from flame_lab.errors import NotFound
from flame_lab.federation import connect


def test_each_data_node_describes_its_tables_and_fhir_store(in_sandbox):
    fed = connect()
    dictionary = fed.datasets()
    assert [d.node for d in dictionary] == ["uk-aachen", "uk-koeln"]  # not the aggregator
    assert dictionary.missing == ()
    aachen = dictionary.node("uk-aachen")
    columns = {c.name: c for c in aachen.tables[0].columns}
    assert aachen.tables[0].name == "patients.csv"
    assert columns["age"].unit == "a" and columns["bmi"].unit == "kg/m2"
    assert {"ICD-10-GM", "LOINC"} <= set(aachen.code_systems)
    assert aachen.policy["approval"] in ("auto", "manual")
    assert "patients.csv" in dictionary.to_text() and "<table>" in dictionary._repr_html_()
    assert [d.node for d in fed.datasets("uk-koeln")] == ["uk-koeln"]
    with pytest.raises(NotFound, match="Data nodes: uk-aachen, uk-koeln"):
        fed.datasets("atlantis")
