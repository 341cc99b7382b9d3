"""PrivateAIM's own example analyses and tester scripts, unchanged, against flame_lab's flame.star.

The files in tests/star/upstream_flame are copies of PrivateAIM's python-sdk-patterns (Apache-2.0,
see NOTICE.md there). Each tester script runs as ``__main__`` exactly as a researcher runs it
(``python test/test_star_pattern.py``) and must give the result upstream's semantics give;
each example entrypoint runs under StarModelTester and, submitted as it is, on a sandbox
federation, including the iterative scikit-learn model that writes plots.
"""

from __future__ import annotations

import hashlib
import io
import re
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flame_lab.star import StarModelTester, ensure_importable

UPSTREAM = Path(__file__).parent / "upstream_flame"
BLOBS = dict(
    re.findall(r"^\| (\S+\.py) \| ([0-9a-f]{40}) \|$", (UPSTREAM / "NOTICE.md").read_text(), re.M)
)
PNG = b"\x89PNG\r\n\x1a\n"
SYMPTOMS = ("acute.fever", "acute.malaise_fatigue", "acute.cough", "acute.dyspnea", "v1.headache")


def test_the_vendored_files_are_upstreams_unchanged():
    assert len(BLOBS) == 8
    for name, blob in BLOBS.items():
        data = (UPSTREAM / name).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, name  # noqa: S324 - git's blob id


def labeled_csv(seed: int, rows: int = 150) -> bytes:
    """A CSV shaped as upstream's synthetic_eucare_*_labeled.csv: index, demographics, symptoms
    (0/1), and the PASC label, which depends on the symptoms so that a model can learn it."""
    rng = np.random.default_rng(seed)
    symptoms = rng.integers(0, 2, size=(rows, len(SYMPTOMS)))
    age = rng.integers(18, 95, size=rows)
    risk = symptoms @ np.array([1.2, 0.9, 0.4, 1.0, 0.3]) + (age - 50) / 40 - 1.8
    pasc = (risk + rng.normal(0, 0.7, size=rows) > 0).astype(int)
    out = io.StringIO()
    out.write(",sex,age," + ",".join(SYMPTOMS) + ",pasc\n")
    for i in range(rows):
        cells = [f"patient_{i:03d}", "MF"[i % 2], str(age[i])]
        cells += [f"{float(v):.1f}" for v in symptoms[i]] + [str(pasc[i])]
        out.write(",".join(cells) + "\n")
    return out.getvalue().encode()


@pytest.fixture
def upstream_cwd(tmp_path, monkeypatch):
    """A folder laid out like a checkout of python-sdk-patterns (test data and results)."""
    ensure_importable()
    for node in (1, 2):
        folder = tmp_path / "test" / "data" / f"node{node}"
        folder.mkdir(parents=True)
        (folder / f"synthetic_eucare_{node}_labeled.csv").write_bytes(labeled_csv(node))
    (tmp_path / "test" / "results").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_script(name: str) -> dict[str, Any]:
    """``python <name>`` of an upstream file, in this process."""
    saved = sys.modules.get("__main__")
    try:
        return runpy.run_path(str(UPSTREAM / name), run_name="__main__")
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def load_module(name: str) -> dict[str, Any]:
    """The definitions of an upstream entrypoint, without running its StarModel."""
    ensure_importable()
    return runpy.run_path(str(UPSTREAM / name), run_name=f"upstream_{Path(name).stem}")


def final_results(out: str) -> list[str]:
    return re.findall(r"^Final result(?:_\d+)?: (.*)$", out, re.M)


# -- upstream's tester scripts, run as scripts -----------------------------------------------
def _recurrence(rounds: int, means: list[float]) -> float:
    """Upstream's star pattern: analyzers send mean + last aggregate + 1/2, the aggregator
    averages; has_converged answers num_iterations >= 5, so six rounds run."""
    aggregate = None
    for _ in range(rounds):
        sent = [m if aggregate is None else (m + aggregate) + 1 / 2 for m in means]
        aggregate = sum(sent) / len(sent)
    return aggregate


def test_star_pattern_script_gives_upstreams_result(upstream_cwd, capsys):
    run_script("test/test_star_pattern.py")
    assert final_results(capsys.readouterr().out) == [str(_recurrence(6, [2.5, 6.5]))]  # 29.5


def test_star_pattern_dp_script_adds_laplace_noise_once_converged(upstream_cwd, capsys):
    run_script("test/test_star_pattern_dp.py")
    (printed,) = final_results(capsys.readouterr().out)
    # epsilon = sensitivity = 1: Laplace(0, 1); |noise| > 30 has probability e^-30
    assert float(printed) != 29.5 and abs(float(printed) - 29.5) < 30


def test_multiple_results_script_releases_each_element(upstream_cwd, capsys):
    run_script("test/test_multiple_results.py")
    assert final_results(capsys.readouterr().out) == ["29.5", "1"]


def test_persistent_analyzer_state_script_keeps_each_analyzers_history(upstream_cwd, capsys):
    run_script("test/test_persistent_analyzer_state.py")
    means, history, aggregate = [2.5, 6.5], [[], []], None
    for _ in range(6):
        sent = []
        for i, mean in enumerate(means):
            weight = min(len(history[i]) / 10, 0.9)
            value = mean if aggregate is None else (1 - weight) * aggregate + weight * mean
            history[i].append(value)
            sent.append(value)
        aggregate = sum(sent) / len(sent)
    assert final_results(capsys.readouterr().out) == [str(aggregate)]


def _check_e2e_files(paths: list[Path]) -> None:
    age, description, pasc, sex = (p.read_bytes() for p in paths)
    assert age.startswith(PNG) and pasc.startswith(PNG) and sex.startswith(PNG)
    text = description.decode()
    assert "HALTA Long Covid -- Federated Dataset Description" in text
    assert "Total rows:        300" in text


def test_e2e_script_trains_the_svm_iteratively_and_writes_plots_and_description(
    upstream_cwd, capsys
):
    run_script("test/test_e2e.py")
    results = upstream_cwd / "test" / "results"
    names = ["age_distribution", "dataset_description", "pasc_distribution", "sex_distribution"]
    exts = [".png", ".txt", ".png", ".png"]
    _check_e2e_files([results / f"{n}_federated_new{e}" for n, e in zip(names, exts, strict=True)])
    out = capsys.readouterr().out
    assert "Final Federated SVM Model" in out


# -- upstream's example entrypoints under StarModelTester ----------------------------------
def _patient_count_split(total: int) -> list[dict[str, Any]]:
    return [
        {"Patient?_summary=count": {"resourceType": "Bundle", "type": "searchset", "total": total}}
    ]


def test_run_star_model_example_sums_patient_counts():
    module = load_module("examples/run_star_model.py")
    tester = StarModelTester(
        [_patient_count_split(120), _patient_count_split(80)],
        module["MyAnalyzer"], module["MyAggregator"], "fhir", query="Patient?_summary=count",
        quiet=True,
    )  # fmt: skip
    assert tester.result == "200.0"


def test_run_star_model_dp_example_noises_the_sum():
    module = load_module("examples/run_star_model_dp.py")
    tester = StarModelTester(
        [_patient_count_split(120), _patient_count_split(80)],
        module["MyAnalyzer"], module["MyAggregator"], "fhir", query="Patient?_summary=count",
        epsilon=1.0, sensitivity=1.0, rng=np.random.default_rng(5), quiet=True,
    )  # fmt: skip
    assert tester.submission.local_dp is not None
    assert float(tester.result) != 200.0 and abs(float(tester.result) - 200.0) < 30


def test_run_e2e_example_under_the_tester(upstream_cwd):
    module = load_module("examples/run_e2e.py")
    splits = [[{f"synthetic_eucare_{n}_labeled.csv": labeled_csv(n)}] for n in (1, 2)]
    paths = [upstream_cwd / f"out_{i}" for i in range(4)]
    tester = StarModelTester(
        splits, module["Analyzer"], module["Aggregator"], "s3", query=[], multiple_results=True,
        simple_analysis=False, output_type=["bytes", "str", "bytes", "bytes"],
        result_filepath=[str(p) for p in paths], quiet=True,
    )  # fmt: skip
    _check_e2e_files(paths)
    assert 2 < tester.num_iterations <= 11
    assert [type(v) for v in tester.result] == [bytes, str, bytes, bytes]


# -- the same entrypoints, submitted unchanged to a sandbox federation ------------------------
SANDBOX_PASSPHRASE = "upstream examples passphrase"
SANDBOX_WAIT = 240  # seconds: a bound for a broken run, never reached when things work


@pytest.fixture(scope="module")
def upstream_sandbox(tmp_path_factory):
    """A sandbox whose hospitals hold synthetic FHIR data plus upstream-shaped labeled CSVs;
    its nodes keep the default profile ('flame': they release what a real FLAME node does)."""
    from flame_lab.sandbox import daemon
    from flame_lab.sandbox.hub.provision import node_names
    from flame_lab.sandbox.node import synthetic
    from flame_lab.security import keys

    home = tmp_path_factory.mktemp("upstream-sandbox")
    keys.save_identity(
        home / "keys" / "identity.json", keys.Identity.generate(), SANDBOX_PASSPHRASE
    )
    sites = [seed.name for seed in node_names(3) if seed.type == "default"]
    data, patients = {}, {}
    for number, name in enumerate(sites, start=1):
        site = synthetic.generate(name)
        folder = synthetic.write(site, home / "data" / name)
        (folder / "s3" / f"synthetic_eucare_{number}_labeled.csv").write_bytes(labeled_csv(number))
        data[name] = folder
        patients[name] = len(site.resources["Patient"])
    daemon.up(home / "sandbox", nodes=3, node_data=data)
    yield home, patients
    daemon.down(home / "sandbox")


@pytest.fixture
def upstream_fed(upstream_sandbox, monkeypatch):
    import flame_lab as fl

    home, patients = upstream_sandbox
    monkeypatch.setenv("FLAME_LAB_HOME", str(home))
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", SANDBOX_PASSPHRASE)
    return fl.connect(), patients


def _submit(fed: Any, name: str, **options: Any) -> Any:
    import flame_lab as fl

    entry = Path(name).name
    draft = fl.Draft.from_files({entry: (UPSTREAM / name).read_text()}, entrypoint=entry)
    run = fed.submit(draft, name=Path(name).stem.replace("_", "-"), **options)
    run.wait(timeout=SANDBOX_WAIT)
    return run.result()


def test_run_star_model_example_on_the_sandbox(upstream_fed):
    fed, patients = upstream_fed
    assert _submit(fed, "examples/run_star_model.py") == str(float(sum(patients.values())))


def test_run_star_model_dp_example_on_the_sandbox(upstream_fed):
    fed, patients = upstream_fed
    noisy = float(_submit(fed, "examples/run_star_model_dp.py"))
    total = sum(patients.values())
    assert noisy != total and abs(noisy - total) < 30


def test_run_e2e_example_on_the_sandbox_trains_iteratively_and_returns_its_plots(upstream_fed):
    fed, _ = upstream_fed
    age, description, pasc, sex = _submit(fed, "examples/run_e2e.py", master_image="python/ml")
    assert age.startswith(PNG) and pasc.startswith(PNG) and sex.startswith(PNG)
    assert "HALTA Long Covid -- Federated Dataset Description" in description
    assert "Total rows:        300" in description
