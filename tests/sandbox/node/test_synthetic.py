"""Synthetic MII-like sites: deterministic per node, different across nodes, FHIR = CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import numpy as np
import pytest

from flame_lab.errors import NodeDataError
from flame_lab.sandbox.node.synthetic import (
    DIABETES_MODEL,
    DIAGNOSES,
    ICD10GM,
    LOINC,
    MEASUREMENTS,
    REFERENCE_DATE,
    UCUM,
    generate,
    write,
)

NODES = ("uk-aachen", "uk-koeln", "uk-bonn")


@pytest.fixture(scope="module")
def sites():
    return {name: generate(name) for name in NODES}


def _rows(site) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(site.tables["patients.csv"].decode("utf-8"))))


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def test_same_node_name_gives_identical_data(sites):
    again = generate("uk-aachen")
    assert again.tables == sites["uk-aachen"].tables
    assert again.resources == sites["uk-aachen"].resources


def test_different_nodes_differ_in_size_and_mix(sites):
    sizes = {s.record_count for s in sites.values()}
    assert len(sizes) == len(NODES)
    prevalences = {
        round(np.mean([int(r["diabetes"]) for r in _rows(s)]), 3) for s in sites.values()
    }
    assert len(prevalences) == len(NODES)
    mean_ages = {round(np.mean([int(r["age"]) for r in _rows(s)]), 1) for s in sites.values()}
    assert len(mean_ages) == len(NODES)


def test_patient_ids_do_not_collide_across_nodes(sites):
    ids = [p["id"] for s in sites.values() for p in s.resources["Patient"]]
    assert len(ids) == len(set(ids))


def test_n_patients_overrides_the_size_but_not_the_site(sites):
    small = generate("uk-aachen", n_patients=40)
    assert small.record_count == 40 and len(_rows(small)) == 40
    assert small.parameters["age_mean"] == sites["uk-aachen"].parameters["age_mean"]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_n_patients_must_be_a_positive_whole_number(bad):
    with pytest.raises(NodeDataError, match="n_patients"):
        generate("uk-aachen", n_patients=bad)


def test_a_node_name_is_required():
    with pytest.raises(NodeDataError):
        generate("  ")


def test_record_count_is_the_number_of_patients(sites):
    for site in sites.values():
        assert site.record_count == len(site.resources["Patient"]) == len(_rows(site))


def test_csv_and_fhir_agree_on_patients_ages_and_sex(sites):
    site = sites["uk-koeln"]
    by_id = {p["id"]: p for p in site.resources["Patient"]}
    for row in _rows(site):
        patient = by_id[row["patient_id"]]
        assert patient["gender"] == row["sex"]
        assert _age_on(date.fromisoformat(patient["birthDate"]), REFERENCE_DATE) == int(row["age"])


def test_csv_and_fhir_agree_on_diagnosis_counts(sites):
    for site in sites.values():
        rows = _rows(site)
        for diagnosis in DIAGNOSES:
            subjects = {
                c["subject"]["reference"].removeprefix("Patient/")
                for c in site.resources["Condition"]
                if c["code"]["coding"][0]["code"] == diagnosis.code
            }
            flagged = {r["patient_id"] for r in rows if r[diagnosis.column] == "1"}
            assert subjects == flagged, diagnosis.column


def test_csv_and_fhir_agree_on_every_measured_value(sites):
    site = sites["uk-bonn"]
    values = {
        (o["subject"]["reference"].removeprefix("Patient/"), o["code"]["coding"][0]["code"]): o[
            "valueQuantity"
        ]["value"]
        for o in site.resources["Observation"]
    }
    for row in _rows(site):
        for m in MEASUREMENTS:
            assert float(row[m.column]) == values[(row["patient_id"], m.loinc)], m.column


def test_conditions_use_icd10gm_codes(sites):
    codes = {
        coding["code"]
        for c in sites["uk-bonn"].resources["Condition"]
        for coding in c["code"]["coding"]
        if coding["system"] == ICD10GM
    }
    assert {"E11.9", "I10.90", "I21.9", "J44.9", "C50.9"} <= codes


def test_observations_use_loinc_codes_and_ucum_units(sites):
    observations = sites["uk-aachen"].resources["Observation"]
    loinc = {o["code"]["coding"][0]["code"] for o in observations}
    assert loinc == {"4548-4", "2339-0", "8480-6", "39156-5", "2093-3"}
    assert all(o["code"]["coding"][0]["system"] == LOINC for o in observations)
    units = {(o["code"]["coding"][0]["code"], o["valueQuantity"]["code"]) for o in observations}
    assert ("4548-4", "%") in units and ("2339-0", "mg/dL") in units
    assert ("8480-6", "mm[Hg]") in units and ("39156-5", "kg/m2") in units
    assert all(o["valueQuantity"]["system"] == UCUM for o in observations)


def test_every_reference_points_at_an_existing_resource(sites):
    site = sites["uk-aachen"]
    known = {f"{r['resourceType']}/{r['id']}" for rs in site.resources.values() for r in rs}
    for kind in ("Encounter", "Condition", "Observation"):
        for resource in site.resources[kind]:
            assert resource["subject"]["reference"] in known
            if "encounter" in resource:
                assert resource["encounter"]["reference"] in known


def test_encounters_have_a_class_and_a_period(sites):
    for encounter in sites["uk-koeln"].resources["Encounter"]:
        assert encounter["class"]["code"] in {"AMB", "IMP", "EMER"}
        assert encounter["period"]["start"] <= encounter["period"]["end"]


def test_diabetics_have_higher_hba1c(sites):
    for site in sites.values():
        rows = _rows(site)
        diabetic = [float(r["hba1c"]) for r in rows if r["diabetes"] == "1"]
        others = [float(r["hba1c"]) for r in rows if r["diabetes"] == "0"]
        assert np.mean(diabetic) > np.mean(others) + 0.5


def test_logistic_regression_recovers_the_true_diabetes_model():
    rows = _rows(generate("recovery-check", n_patients=3000))
    x = np.array([[1.0, float(r["age"]), float(r["bmi"]), float(r["hba1c"])] for r in rows])
    y = np.array([int(r["diabetes"]) for r in rows])
    beta = np.zeros(4)
    for _ in range(25):  # Newton-Raphson
        p = 1 / (1 + np.exp(-x @ beta))
        hessian = x.T @ (x * (p * (1 - p))[:, None])
        beta += np.linalg.solve(hessian, x.T @ (y - p))
    se = np.sqrt(np.diag(np.linalg.inv(hessian)))
    truth = np.array([DIABETES_MODEL[k] for k in ("intercept", "age", "bmi", "hba1c")])
    assert np.all(np.abs(beta - truth) < 4 * se), (beta, truth, se)


def test_write_makes_fhir_bundles_and_s3_tables(tmp_path, sites):
    site = sites["uk-koeln"]
    write(site, tmp_path)
    patients = json.loads((tmp_path / "fhir" / "Patient.json").read_text(encoding="utf-8"))
    assert patients["resourceType"] == "Bundle" and patients["type"] == "collection"
    assert len(patients["entry"]) == site.record_count
    assert patients["entry"][0]["resource"] == site.resources["Patient"][0]
    assert sorted(p.name for p in (tmp_path / "fhir").iterdir()) == [
        "Condition.json",
        "Encounter.json",
        "Observation.json",
        "Patient.json",
    ]
    assert (tmp_path / "s3" / "patients.csv").read_bytes() == site.tables["patients.csv"]
