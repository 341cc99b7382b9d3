"""The FHIR search subset: each parameter, paging, and a clear error for anything else."""

from __future__ import annotations

import pytest

from flame_lab.errors import FhirQueryError, FlameLabError
from flame_lab.sandbox.node.fhir import DEFAULT_COUNT, FhirStore
from flame_lab.sandbox.node.synthetic import generate


def _patient(pid: str, gender: str = "female") -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": gender}


def _observation(oid: str, pid: str, system: str, code: str, value: float) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": value},
    }


LOINC = "http://loinc.org"
ICD = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"


@pytest.fixture
def store() -> FhirStore:
    resources = [
        _patient("p1"),
        _patient("p2", "male"),
        _patient("p3"),
        _observation("o1", "p1", LOINC, "4548-4", 6.1),
        _observation("o2", "p2", LOINC, "4548-4", 7.9),
        _observation("o3", "p2", LOINC, "2339-0", 140),
        _observation("o4", "p3", "http://other.org", "4548-4", 5.0),
        _observation("o5", "p3", "", "nocode-system", 1.0),
        {
            "resourceType": "Condition",
            "id": "c1",
            "code": {"coding": [{"system": ICD, "code": "E11.9"}]},
            "subject": {"reference": "Patient/p2"},
        },
        {
            "resourceType": "Condition",
            "id": "c2",
            "code": {"coding": [{"system": ICD, "code": "I10.90"}]},
            "subject": {"reference": "Patient/p1"},
        },
    ]
    return FhirStore(resources, base_url="http://node/fhir")


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def test_a_search_returns_a_searchset_bundle(store):
    bundle = store.search("Patient")
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == 3
    assert bundle["entry"][0] == {
        "fullUrl": "http://node/fhir/Patient/p1",
        "resource": _patient("p1"),
        "search": {"mode": "match"},
    }
    assert bundle["link"][0] == {"relation": "self", "url": "http://node/fhir/Patient"}


def test_code_with_system_and_code(store):
    assert _ids(store.search(f"Observation?code={LOINC}|4548-4")) == ["o1", "o2"]


def test_code_alone_matches_any_system(store):
    assert _ids(store.search("Observation?code=4548-4")) == ["o1", "o2", "o4"]
    assert _ids(store.search("Condition?code=E11.9")) == ["c1"]


def test_code_with_system_only_matches_every_code_in_it(store):
    assert _ids(store.search(f"Observation?code={LOINC}|")) == ["o1", "o2", "o3"]


def test_code_with_empty_system_matches_codings_without_one(store):
    assert _ids(store.search("Observation?code=|nocode-system")) == ["o5"]


def test_commas_in_code_mean_or(store):
    assert _ids(store.search("Condition?code=E11.9,I10.90")) == ["c1", "c2"]


def test_url_encoded_bars_are_understood(store):
    assert _ids(store.search("Observation?code=http%3A%2F%2Floinc.org%7C2339-0")) == ["o3"]


def test_subject_as_reference_or_bare_id(store):
    assert _ids(store.search("Observation?subject=Patient/p2")) == ["o2", "o3"]
    assert _ids(store.search("Observation?subject=p2")) == ["o2", "o3"]
    assert _ids(store.search("Observation?patient=p1")) == ["o1"]


def test_subject_must_be_a_patient(store):
    with pytest.raises(FhirQueryError, match="Patient"):
        store.search("Observation?subject=Group/g1")


def test_repeated_parameters_mean_and(store):
    bundle = store.search(f"Observation?code={LOINC}|4548-4&subject=Patient/p2")
    assert _ids(bundle) == ["o2"]


def test_id_and_gender_on_patients(store):
    assert _ids(store.search("Patient?_id=p1,p3")) == ["p1", "p3"]
    assert _ids(store.search("Patient?gender=male")) == ["p2"]


def test_count_limits_the_page_and_links_the_next(store):
    bundle = store.search("Patient?_count=2")
    assert bundle["total"] == 3 and _ids(bundle) == ["p1", "p2"]
    assert bundle["link"][1] == {
        "relation": "next",
        "url": "http://node/fhir/Patient?_count=2&_offset=2",
    }
    assert _ids(store.search("Patient?_count=2&_offset=2")) == ["p3"]


def test_an_analysis_asking_for_n_gets_up_to_n_entries():
    site = generate("fhir-count", n_patients=300)
    store = FhirStore(site.resources)
    bundle = store.search("Patient?_count=1000")
    assert bundle["total"] == 300 and len(bundle["entry"]) == 300
    assert [link["relation"] for link in bundle["link"]] == ["self"]


def test_without_count_a_page_holds_the_default_number():
    store = FhirStore(generate("fhir-default", n_patients=120).resources)
    bundle = store.search("Patient")
    assert len(bundle["entry"]) == DEFAULT_COUNT and bundle["total"] == 120
    assert any(link["relation"] == "next" for link in bundle["link"])


def test_search_all_follows_next_links():
    store = FhirStore(generate("fhir-all", n_patients=120).resources)
    bundle = store.search_all("Patient?_count=50")
    assert len(bundle["entry"]) == bundle["total"] == 120
    assert len({e["resource"]["id"] for e in bundle["entry"]}) == 120


def test_summary_count_gives_the_total_only(store):
    bundle = store.search("Observation?code=4548-4&_summary=count")
    assert bundle["total"] == 3 and "entry" not in bundle


def test_count_zero_gives_the_total_without_entries(store):
    bundle = store.search("Patient?_count=0")
    assert bundle["total"] == 3 and bundle["entry"] == []


def test_entries_are_copies_the_analysis_cannot_change_the_store(store):
    store.search("Patient")["entry"][0]["resource"]["gender"] = "changed"
    assert store.search("Patient?_id=p1")["entry"][0]["resource"]["gender"] == "female"


def test_a_known_type_without_data_gives_an_empty_bundle():
    store = FhirStore([_patient("p1")])
    assert store.search("Condition")["total"] == 0


def test_a_full_url_query_is_understood(store):
    assert store.search("http://node/fhir/Patient?_id=p2")["total"] == 1


def test_unknown_resource_type_is_refused_with_the_supported_ones(store):
    with pytest.raises(FhirQueryError, match="MedicationStatement") as info:
        store.search("MedicationStatement?_count=10")
    assert "Patient" in info.value.hint and "Observation" in info.value.hint


def test_types_present_in_the_data_are_searchable():
    store = FhirStore([{"resourceType": "Procedure", "id": "x1"}])
    assert store.search("Procedure")["total"] == 1


def test_unknown_parameter_is_refused_with_the_supported_ones(store):
    with pytest.raises(FhirQueryError, match="birthdate") as info:
        store.search("Patient?birthdate=ge1950-01-01")
    assert "_count" in info.value.hint and "gender" in info.value.hint


def test_a_parameter_not_meant_for_the_type_is_refused(store):
    with pytest.raises(FhirQueryError, match="code"):
        store.search("Patient?code=E11.9")


def test_modifiers_are_refused_not_ignored(store):
    with pytest.raises(FhirQueryError, match="code:text"):
        store.search("Observation?code:text=glucose")


@pytest.mark.parametrize("query", ["Patient?_count=-1", "Patient?_count=ten", "Patient?_offset=x"])
def test_bad_paging_values_are_refused(store, query):
    with pytest.raises(FhirQueryError, match="whole number"):
        store.search(query)


def test_other_summary_modes_are_refused(store):
    with pytest.raises(FhirQueryError, match="_summary") as info:
        store.search("Patient?_summary=true")
    assert "count" in info.value.hint


def test_empty_values_and_queries_are_refused(store):
    with pytest.raises(FhirQueryError):
        store.search("Patient?gender=")
    with pytest.raises(FhirQueryError, match="empty"):
        store.search("  ")


def test_resources_without_a_type_cannot_be_stored():
    with pytest.raises(FhirQueryError, match="resourceType"):
        FhirStore([{"id": "x"}])


def test_query_errors_belong_to_the_one_error_tree():
    assert issubclass(FhirQueryError, FlameLabError)


def test_counts_report_resources_per_type(store):
    assert store.counts() == {"Condition": 2, "Observation": 5, "Patient": 3}
