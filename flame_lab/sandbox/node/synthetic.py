"""Synthetic hospital data for sandbox nodes, shaped like a German MII core data set.

Each node gets its own deterministic site (seeded by its name): its own size, age/sex mix and
prevalences, so federated and pooled results differ per node yet stay comparable. All sites
share one true model, ``DIABETES_MODEL``: P(diabetes) = logistic(intercept + age*b_age +
bmi*b_bmi + hba1c*b_hba1c) on the released (rounded) values, so a federated logistic
regression has a known answer to recover. FHIR resources and ``patients.csv`` describe the same
patients and agree on every value they share.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from flame_lab.errors import NodeDataError

ICD10GM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
ICD10GM_VERSION = "2025"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_MII = "https://www.medizininformatik-initiative.de/fhir/core"
PROFILES = {
    "Patient": f"{_MII}/modul-person/StructureDefinition/Patient",
    "Encounter": f"{_MII}/modul-fall/StructureDefinition/KontaktGesundheitseinrichtung",
    "Condition": f"{_MII}/modul-diagnose/StructureDefinition/Diagnose",
    "Observation": f"{_MII}/modul-labor/StructureDefinition/ObservationLab",
}
#: Every site's data are drawn on this day; ages are ages on this day.
REFERENCE_DATE = date(2025, 6, 30)

#: The true model behind the ``diabetes`` column, shared by all sites (raw units).
DIABETES_MODEL: dict[str, float] = {"intercept": -19.0, "age": 0.03, "bmi": 0.1, "hba1c": 2.2}


@dataclass(frozen=True)
class Diagnosis:
    """A CSV 0/1 column and the ICD-10-GM code of its FHIR Condition."""

    column: str
    code: str
    display: str


@dataclass(frozen=True)
class Measurement:
    """A CSV value column and the LOINC-coded FHIR Observation carrying the same value."""

    column: str
    loinc: str
    display: str
    unit: str
    category: str
    decimals: int


DIAGNOSES = (
    Diagnosis("diabetes", "E11.9", "Diabetes mellitus, Typ 2: Ohne Komplikationen"),
    Diagnosis(
        "hypertension",
        "I10.90",
        "Essentielle Hypertonie, nicht näher bezeichnet: Ohne Angabe einer hypertensiven Krise",
    ),
    Diagnosis("myocardial_infarction", "I21.9", "Akuter Myokardinfarkt, nicht näher bezeichnet"),
    Diagnosis("copd", "J44.9", "Chronische obstruktive Lungenkrankheit, nicht näher bezeichnet"),
    Diagnosis("breast_cancer", "C50.9", "Bösartige Neubildung: Brustdrüse, nicht näher bezeichnet"),
    Diagnosis("hypercholesterolemia", "E78.0", "Reine Hypercholesterinämie"),
)
MEASUREMENTS = (
    Measurement(
        "hba1c", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "laboratory", 1
    ),
    Measurement("glucose", "2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", "laboratory", 0),
    Measurement("systolic_bp", "8480-6", "Systolic blood pressure", "mm[Hg]", "vital-signs", 0),
    Measurement("bmi", "39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "vital-signs", 1),
    Measurement(
        "cholesterol",
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        "mg/dL",
        "laboratory",
        0,
    ),
)
CSV_COLUMNS = (
    "patient_id",
    "age",
    "sex",
    *(m.column for m in MEASUREMENTS),
    "smoker",
    *(d.column for d in DIAGNOSES),
)
_ENCOUNTER_CLASSES = (("AMB", "ambulatory"), ("IMP", "inpatient encounter"), ("EMER", "emergency"))


@dataclass
class SyntheticSite:
    """One node's generated data: FHIR resources by type, CSV tables, and how they were made."""

    node_name: str
    resources: dict[str, list[dict[str, Any]]]
    tables: dict[str, bytes]
    record_count: int
    parameters: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        counts = {k: len(v) for k, v in self.resources.items()}
        return f"SyntheticSite({self.node_name!r}, record_count={self.record_count}, {counts})"


def _seed(node_name: str) -> int:
    digest = hashlib.sha256(b"flame-lab/synthetic/v1\x00" + node_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _slug(node_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", node_name).strip("-").lower()[:40]
    return slug or "node"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _site_parameters(rng: np.random.Generator) -> dict[str, float]:
    """Drawn first and always in this order, so a site keeps them whatever its size."""
    return {
        "n_default": float(rng.integers(300, 701)),
        "age_mean": float(rng.uniform(46, 64)),
        "female_share": float(rng.uniform(0.44, 0.58)),
        "other_share": 0.006,
        "bmi_shift": float(rng.uniform(-1.5, 1.8)),
        "dysglycemia_share": float(rng.uniform(0.05, 0.18)),
        "smoker_share": float(rng.uniform(0.16, 0.32)),
    }


def _patients(rng: np.random.Generator, n: int, p: dict[str, float]) -> dict[str, np.ndarray]:
    """Patient-level columns, each drawn from the released (rounded) values before it."""
    age = np.clip(np.rint(rng.normal(p["age_mean"], 17, n)), 18, 95).astype(int)
    female_p = p["female_share"] * (1 - p["other_share"])
    sex = rng.choice(
        np.array(["female", "male", "other"]),
        size=n,
        p=[female_p, 1 - female_p - p["other_share"], p["other_share"]],
    )
    female = sex == "female"
    smoker = rng.random(n) < p["smoker_share"]
    bmi_mean = 26.5 + p["bmi_shift"] + 0.03 * (age - 50) - 0.6 * female
    bmi = np.round(np.clip(rng.normal(bmi_mean, 4.3), 16, 55), 1)
    dys_p = np.clip(p["dysglycemia_share"] * np.exp(0.02 * (age - 55)), 0, 0.9)
    dysglycemic = rng.random(n) < dys_p
    hba1c = 5.2 + 0.008 * (age - 50) + 0.025 * (bmi - 26) + rng.normal(0, 0.35, n)
    hba1c = np.round(np.clip(hba1c + dysglycemic * rng.gamma(3.0, 0.6, n), 4.0, 14.0), 1)
    m = DIABETES_MODEL
    logit = m["intercept"] + m["age"] * age + m["bmi"] * bmi + m["hba1c"] * hba1c
    diabetes = rng.random(n) < _sigmoid(logit)
    glucose = np.rint(np.clip(28.7 * hba1c - 46.7 + rng.normal(0, 15, n), 55, 450)).astype(int)
    hypertension = rng.random(n) < _sigmoid(-5.2 + 0.07 * age + 0.08 * (bmi - 26) + 0.5 * diabetes)
    systolic = 117 + 0.35 * (age - 50) + 0.7 * (bmi - 26) + 16 * hypertension
    systolic_bp = np.rint(np.clip(systolic + rng.normal(0, 11, n), 85, 230)).astype(int)
    chol_mean = 190 + 0.6 * (age - 50) + 3 * (bmi - 26)
    cholesterol = np.rint(np.clip(rng.normal(chol_mean, 35), 100, 380)).astype(int)
    hypercholesterolemia = (cholesterol >= 250) & (rng.random(n) < 0.7)
    mi_logit = -7.5 + 0.05 * age + 0.7 * diabetes + 0.6 * hypertension + 0.8 * smoker
    myocardial_infarction = rng.random(n) < _sigmoid(mi_logit)
    copd = rng.random(n) < _sigmoid(-6.5 + 0.04 * age + 1.8 * smoker)
    breast_cancer = female & (rng.random(n) < _sigmoid(-6.2 + 0.04 * age))
    return {
        "age": age,
        "sex": sex,
        "hba1c": hba1c,
        "glucose": glucose,
        "systolic_bp": systolic_bp,
        "bmi": bmi,
        "cholesterol": cholesterol,
        "smoker": smoker.astype(int),
        "diabetes": diabetes.astype(int),
        "hypertension": hypertension.astype(int),
        "myocardial_infarction": myocardial_infarction.astype(int),
        "copd": copd.astype(int),
        "breast_cancer": breast_cancer.astype(int),
        "hypercholesterolemia": hypercholesterolemia.astype(int),
    }


def _ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


def _meta(kind: str) -> dict[str, list[str]]:
    return {"profile": [PROFILES[kind]]}


def _value(measurement: Measurement, raw: Any) -> int | float:
    return round(float(raw), 1) if measurement.decimals else int(raw)


def generate(node_name: str, n_patients: int | None = None) -> SyntheticSite:
    """The node's synthetic site: same name, same data; ``n_patients`` overrides its size."""
    if not isinstance(node_name, str) or not node_name.strip():
        raise NodeDataError("A synthetic site needs a non-empty node name", hint="Name the node.")
    if n_patients is not None and (
        isinstance(n_patients, bool) or not isinstance(n_patients, int) or n_patients < 1
    ):
        raise NodeDataError(
            f"n_patients must be a whole number >= 1, not {n_patients!r}",
            hint="Leave it out for the node's own default size.",
        )
    rng = np.random.default_rng(_seed(node_name))
    params = _site_parameters(rng)
    n = n_patients if n_patients is not None else int(params["n_default"])
    params["n_patients"] = float(n)
    cols = _patients(rng, n, params)
    encounters_per_patient = 1 + np.minimum(rng.poisson(1.0, n), 4)
    slug = _slug(node_name)

    resources: dict[str, list[dict[str, Any]]] = {
        "Patient": [],
        "Encounter": [],
        "Condition": [],
        "Observation": [],
    }
    rows: list[list[Any]] = []
    birth_offsets = rng.integers(0, 361, n)
    for i in range(n):
        pid = f"{slug}-{i:05d}"
        age = int(cols["age"][i])
        birth = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - age)
        birth -= timedelta(days=int(birth_offsets[i]))
        resources["Patient"].append(
            {
                "resourceType": "Patient",
                "id": pid,
                "meta": _meta("Patient"),
                "gender": str(cols["sex"][i]),
                "birthDate": birth.isoformat(),
            }
        )
        # encounters, newest last; observations hang on the newest, diagnoses on the first
        k = int(encounters_per_patient[i])
        last = REFERENCE_DATE - timedelta(days=int(rng.integers(0, 365)))
        gaps = rng.integers(20, 400, k - 1)
        starts = [last - timedelta(days=int(g)) for g in np.cumsum(gaps[::-1])[::-1]] + [last]
        klass = rng.choice(len(_ENCOUNTER_CLASSES), size=k, p=[0.6, 0.3, 0.1])
        stays = rng.integers(1, 15, k)
        encounter_ids = []
        for j in range(k):
            eid = f"{slug}-e{i:05d}-{j}"
            code, display = _ENCOUNTER_CLASSES[int(klass[j])]
            end = starts[j] + timedelta(days=int(stays[j]) if code == "IMP" else 0)
            encounter_ids.append(eid)
            resources["Encounter"].append(
                {
                    "resourceType": "Encounter",
                    "id": eid,
                    "meta": _meta("Encounter"),
                    "status": "finished",
                    "class": {"system": ACT_CODE, "code": code, "display": display},
                    "subject": _ref("Patient", pid),
                    "period": {"start": starts[j].isoformat(), "end": end.isoformat()},
                }
            )
        for diagnosis in DIAGNOSES:
            if cols[diagnosis.column][i]:
                resources["Condition"].append(
                    {
                        "resourceType": "Condition",
                        "id": f"{slug}-c{i:05d}-{diagnosis.code}",
                        "meta": _meta("Condition"),
                        "clinicalStatus": {
                            "coding": [{"system": CONDITION_CLINICAL, "code": "active"}]
                        },
                        "verificationStatus": {
                            "coding": [{"system": CONDITION_VERIFICATION, "code": "confirmed"}]
                        },
                        "code": {
                            "coding": [
                                {
                                    "system": ICD10GM,
                                    "version": ICD10GM_VERSION,
                                    "code": diagnosis.code,
                                    "display": diagnosis.display,
                                }
                            ]
                        },
                        "subject": _ref("Patient", pid),
                        "encounter": _ref("Encounter", encounter_ids[0]),
                        "recordedDate": starts[0].isoformat(),
                    }
                )
        row: list[Any] = [pid, age, str(cols["sex"][i])]
        for measurement in MEASUREMENTS:
            value = _value(measurement, cols[measurement.column][i])
            row.append(value)
            resources["Observation"].append(
                {
                    "resourceType": "Observation",
                    "id": f"{slug}-o{i:05d}-{measurement.loinc}",
                    "meta": _meta("Observation"),
                    "status": "final",
                    "category": [
                        {"coding": [{"system": OBSERVATION_CATEGORY, "code": measurement.category}]}
                    ],
                    "code": {
                        "coding": [
                            {
                                "system": LOINC,
                                "code": measurement.loinc,
                                "display": measurement.display,
                            }
                        ]
                    },
                    "subject": _ref("Patient", pid),
                    "encounter": _ref("Encounter", encounter_ids[-1]),
                    "effectiveDateTime": last.isoformat(),
                    "valueQuantity": {
                        "value": value,
                        "unit": measurement.unit,
                        "system": UCUM,
                        "code": measurement.unit,
                    },
                }
            )
        row.append(int(cols["smoker"][i]))
        row += [int(cols[d.column][i]) for d in DIAGNOSES]
        rows.append(row)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    tables = {"patients.csv": buffer.getvalue().encode("utf-8")}
    return SyntheticSite(node_name, resources, tables, n, params)


def bundle(resources: list[dict[str, Any]], base_url: str) -> dict[str, Any]:
    """A FHIR collection Bundle holding the resources, as written to ``fhir/<Type>.json``."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }


#: The data dictionary's notes for ``patients.csv``: units and meanings (never values).
DICTIONARY_FILE = ".dictionary.json"


def dictionary_notes() -> dict[str, Any]:
    """Units and meanings of the synthetic table's columns, for the node's data description."""
    columns: dict[str, dict[str, str]] = {
        "patient_id": {"description": "pseudonym, the id of the FHIR Patient"},
        "age": {"unit": "a", "description": f"age in years on {REFERENCE_DATE.isoformat()}"},
        "sex": {"description": "administrative gender (FHIR Patient.gender)"},
        "smoker": {"description": "1 = current smoker"},
    }
    for m in MEASUREMENTS:
        columns[m.column] = {"unit": m.unit, "description": f"LOINC {m.loinc}: {m.display}"}
    for d in DIAGNOSES:
        columns[d.column] = {"description": f"1 = ICD-10-GM {d.code}: {d.display}"}
    return {"tables": {"patients.csv": {"columns": columns}}}


def write(site: SyntheticSite, folder: str | os.PathLike[str]) -> Path:
    """Write ``fhir/<Type>.json`` bundles, ``s3/<table>`` files and the data dictionary's notes
    (a hidden file, which analyses never see); returns the folder."""
    folder = Path(folder)
    (folder / "fhir").mkdir(parents=True, exist_ok=True)
    (folder / "s3").mkdir(parents=True, exist_ok=True)
    base_url = f"https://{_slug(site.node_name)}.sandbox.invalid/fhir"
    for kind, items in site.resources.items():
        text = json.dumps(bundle(items, base_url), ensure_ascii=False, separators=(",", ":"))
        (folder / "fhir" / f"{kind}.json").write_text(text, encoding="utf-8")
    for name, data in site.tables.items():
        (folder / "s3" / name).write_bytes(data)
    notes = json.dumps(dictionary_notes(), ensure_ascii=False, indent=1)
    (folder / DICTIONARY_FILE).write_text(notes, encoding="utf-8")
    return folder
