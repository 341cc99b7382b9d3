"""The whole loop against a started sandbox: sign, submit, approve, run, seal, open.

Every test here talks to a real hub process and real node agent processes; the analyses
they submit live in tests/analyses/ and are written as a researcher would write them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import runpy
import signal
import time
from dataclasses import replace
from pathlib import Path

import httpx2
import numpy as np
import pytest

import flame_lab as fl
from flame_lab.errors import (
    AnalysisFailed,
    DraftError,
    NotFound,
    TamperedResult,
)
from flame_lab.federation import AnalysisStatus, NodeState, explain_wait, overall_status
from flame_lab.hubclient import every, with_client_credentials
from flame_lab.privacy import NodePolicy, dump_policy, load_policy
from flame_lab.sandbox import daemon
from flame_lab.sandbox.admin import decide
from flame_lab.sandbox.node import synthetic
from flame_lab.sandbox.node.layout import NodeFolder
from flame_lab.security import envelope, keys
from flame_lab.star import StarModelTester, ensure_importable

ANALYSES = Path(__file__).parent / "analyses"
# the mean-age analysis is the example shipped with flame_lab (flame-lab demo runs it)
MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"
ensure_importable()  # the analyses import flame.star, as on a FLAME node
WAIT = 90  # seconds; a bound for a broken build, never reached when things work


# -- the pure part: one word for an analysis ----------------------------------------------
def _node(name, kind="default", approval="approved", execution=None, comment=None):
    return NodeState(name, name, kind, approval, execution, 0, comment)


def test_an_analysis_waiting_for_approval_is_pending():
    assert (
        overall_status([_node("a", approval=None), _node("g", "aggregator")], None, False)[0]
        == "pending"
    )


def test_waiting_is_explained_naming_the_node_and_what_it_waits_for():
    def why(distributed=False, **fields):
        node = replace(_node("uk-koeln"), **fields)
        return explain_wait(node, distributed, "A1")

    assert why(approval=None, online=True).startswith("waiting for uk-koeln to approve")
    assert why(approval=None, online=False) == (
        "uk-koeln is offline: it reviews the analysis once its node is back"
    )
    assert why(online=False) == "uk-koeln approved but is offline: it cannot start"
    assert why(distributed=True, online=True) == "waiting for uk-koeln to start"
    assert why(execution="executing", online=False) == (
        "uk-koeln is offline while running the analysis"
    )
    assert why(execution="executing", online=True) == ""
    assert why(execution="executed", online=False) == ""
    status = AnalysisStatus("A1", "x", "pending", 0, (replace(_node("a"), waiting="w"),))
    assert status.waiting == ["w"] and status.to_dict()["waiting"] == ["w"]
    assert replace(status, overall="cancelled").waiting == []


def test_a_rejection_wins_and_names_the_node_and_its_reason():
    nodes = [_node("a", approval="rejected", comment="not today"), _node("b", execution="failed")]
    assert overall_status(nodes, None, False) == ("rejected", ("a", "not today"))


def test_a_failed_node_fails_the_analysis_with_its_reason():
    nodes = [_node("a", execution="executed"), _node("b", execution="failed", comment="boom")]
    assert overall_status(nodes, "executed", False) == ("failed", ("b", "boom"))


def test_a_reason_that_starts_with_the_nodes_own_name_names_it_once():
    hub_said = "aggregator: the hub has no room to upload the sealed result"
    nodes = [_node("aggregator", "aggregator", execution="failed", comment=hub_said)]
    assert overall_status(nodes, None, False) == (
        "failed",
        ("aggregator", "the hub has no room to upload the sealed result"),
    )


def test_only_every_node_executed_is_executed():
    nodes = [_node("a", execution="executed"), _node("g", "aggregator", execution="executing")]
    assert overall_status(nodes, "executed", False)[0] == "running"
    nodes[1] = _node("g", "aggregator", execution="executed")
    assert overall_status(nodes, "executed", False)[0] == "executed"


def test_cancelled_is_final_whatever_the_nodes_say():
    assert overall_status([_node("a", execution="executing")], "executed", True)[0] == "cancelled"


# -- a started sandbox ------------------------------------------------------------------------
@pytest.fixture
def flame_home(sandbox_home, in_sandbox):
    """These tests share the suite's one running sandbox (tests/conftest.py)."""
    return sandbox_home


@pytest.fixture
def fed(flame_home):
    return fl.connect()


def _node_folder(home: Path, name: str) -> NodeFolder:
    return NodeFolder.of(home / "sandbox", name)


def _draft(name: str, **replace: str) -> fl.Draft:
    text = (MEAN_AGE if name == MEAN_AGE.name else ANALYSES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return fl.Draft.from_files({name: text}, entrypoint=name)


def _pooled_table(fed) -> list[dict[str, str]]:
    rows = []
    for node in fed.nodes():
        if node.type == "default":
            table = synthetic.generate(node.name).tables["patients.csv"]
            rows += list(csv.DictReader(io.StringIO(table.decode())))
    return rows


def _set_policy(home: Path, node: str, **changes) -> NodePolicy:
    """Edit a node's policy file as its data steward would; returns the old policy."""
    folder = _node_folder(home, node)
    old = load_policy(folder.policy)
    data = old.to_dict()
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[key] = value
    dump_policy(NodePolicy.from_dict(data, str(folder.policy)), folder.policy)
    return old


def _wait_for(predicate, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_sandbox_offers_data_nodes_and_an_aggregator(fed):
    nodes = fed.nodes()
    assert [n.type for n in nodes].count("aggregator") == 1
    assert len([n for n in nodes if n.type == "default"]) == 2
    assert all(n.online for n in nodes), "every node agent keeps asking the hub for changes"


def test_a_federated_mean_equals_the_pooled_mean(fed):
    run = fed.submit(_draft("mean_age.py"), name="mean age")
    run.wait(timeout=WAIT)
    result = run.result()
    pooled = [float(r["age"]) for r in _pooled_table(fed)]
    assert result["n"] == len(pooled)
    assert result["mean_age"] == pytest.approx(sum(pooled) / len(pooled), rel=1e-12)
    assert run.status().overall == "executed"


def test_waiting_follows_the_sandboxs_change_feed(fed, monkeypatch):
    asked: list[str] = []
    get = fed.clients.core_http.get
    monkeypatch.setattr(
        fed.clients.core_http, "get", lambda url, **kw: asked.append(str(url)) or get(url, **kw)
    )
    run = fed.submit(_draft("mean_age.py"), name="followed")
    assert run.wait(timeout=WAIT).overall == "executed"
    assert f"analyses/{run.id}/changes" in asked and fed.change_feed


def test_against_a_hub_without_a_change_feed_waiting_polls(fed, monkeypatch):
    get = fed.clients.core_http.get

    def no_feed(url, **kw):
        if str(url).endswith("/changes"):
            return httpx2.Response(404, json={"statusCode": 404, "message": "no route"})
        return get(url, **kw)

    monkeypatch.setattr(fed.clients.core_http, "get", no_feed)
    run = fed.submit(_draft("mean_age.py"), name="polled")
    assert run.wait(timeout=WAIT).overall == "executed"
    assert not fed.change_feed
    assert run.result()["n"] > 0


def test_every_nodes_logs_arrive_merged_in_one_place(fed):
    run = fed.submit(_draft("mean_age.py"))
    run.wait(timeout=WAIT)
    lines = run.logs()
    assert {ln.node_name for ln in lines} >= {"uk-aachen", "uk-koeln", "aggregator", "hub"}
    assert [ln.time for ln in lines] == sorted(ln.time for ln in lines)
    assert all(ln.node_name == "uk-koeln" for ln in run.logs(node="uk-koeln"))
    assert all(ln.level in ("emerg", "alert", "crit", "error") for ln in run.logs(level="error"))
    with pytest.raises(NotFound, match="not part of"):
        run.logs(node="nowhere")


def test_a_fhir_count_equals_the_pooled_count(fed):
    run = fed.submit(_draft("fhir_counts.py"))
    run.wait(timeout=WAIT)
    result = run.result()
    sites = [synthetic.generate(n.name) for n in fed.nodes() if n.type == "default"]
    assert result["patients"] == sum(s.record_count for s in sites)
    diabetes = sum(
        1
        for s in sites
        for c in s.resources["Condition"]
        if any(code["code"] == "E11.9" for code in c["code"]["coding"])
    )
    assert result["diabetes"] == diabetes


def test_the_same_file_runs_unchanged_under_the_tester_and_on_the_sandbox(fed):
    namespace = runpy.run_path(str(MEAN_AGE), run_name="as_module")
    splits = [
        [{"patients.csv": synthetic.generate(n.name).tables["patients.csv"]}]
        for n in fed.nodes()
        if n.type == "default"
    ]
    tester = StarModelTester(
        data_splits=splits,
        analyzer=namespace["MeanAnalyzer"],
        aggregator=namespace["MeanAggregator"],
        data_type="s3",
        query=["patients.csv"],
        output_type="pickle",
        quiet=True,
    )
    run = fed.submit(_draft("mean_age.py"))
    run.wait(timeout=WAIT)
    assert run.result() == tester.result


def test_an_iterative_logistic_regression_matches_the_pooled_fit(fed):
    run = fed.submit(_draft("logistic_regression.py"), name="logreg")
    run.wait(timeout=WAIT)
    weights = np.array(run.result())
    module = runpy.run_path(str(ANALYSES / "logistic_regression.py"), run_name="as_module")
    rows = _pooled_table(fed)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    x, y = module["design"](buffer.getvalue().encode())
    w = np.zeros(x.shape[1])
    for _ in range(50):  # pooled Newton's method to machine precision
        p = 1 / (1 + np.exp(-x @ w))
        step = np.linalg.solve((x * (p * (1 - p))[:, None]).T @ x, x.T @ (y - p))
        w += step
        if np.abs(step).max() < 1e-12:
            break
    np.testing.assert_allclose(weights, w, rtol=1e-6, atol=1e-8)
    rounds = [ln for ln in run.logs(node="aggregator") if "round" in ln.message.lower()]
    assert weights.shape == (4,) and rounds is not None


def test_local_dp_adds_noise_and_the_aggregator_charges_the_budget(fed, flame_home):
    old = _set_policy(flame_home, "aggregator", privacy__epsilon_per_researcher=1.5)
    try:
        run = fed.submit(_draft("dp_count.py"))
        run.wait(timeout=WAIT)
        noisy = float(run.result())
        exact = sum(
            synthetic.generate(n.name).record_count for n in fed.nodes() if n.type == "default"
        )
        assert abs(noisy - exact) < 50  # Laplace(1): beyond 50 has probability e^-50
        assert any("charged epsilon 1" in ln.message for ln in run.logs(node="aggregator"))

        second = fed.submit(_draft("dp_count.py"))
        with pytest.raises(AnalysisFailed, match="budget exhausted"):
            second.wait(timeout=WAIT)
    finally:
        dump_policy(old, _node_folder(flame_home, "aggregator").policy)


def test_manual_approval_waits_for_the_node_admin_then_runs(fed, flame_home):
    old = _set_policy(flame_home, "uk-koeln", approval="manual")
    try:
        run = fed.submit(_draft("mean_age.py"))
        _wait_for(
            lambda: any("waiting for the node admin" in ln.message for ln in run.logs()),
            "uk-koeln to ask its admin",
        )
        status = run.status()
        assert status.overall == "pending"
        assert {n.name: n.approval for n in status.nodes}["uk-koeln"] is None
        # the node's signed log says its admin has the code: the approval limit applies
        assert status.waiting == [
            f"waiting for uk-koeln to approve (a node with manual approval waits for its "
            f"admin; sandbox: flame-lab sandbox approve {run.id} --node uk-koeln); gives up "
            "after 7.0 d more (FLAME_LAB_APPROVAL_WAIT)"
        ]
        assert "waiting for uk-koeln to approve" in status.to_text()
        decide(run.id, "uk-koeln", approve=True, home=flame_home / "sandbox")
        assert run.wait(timeout=WAIT).overall == "executed"
    finally:
        dump_policy(old, _node_folder(flame_home, "uk-koeln").policy)


def test_a_rejection_fails_the_analysis_with_the_nodes_reason(fed, flame_home):
    old = _set_policy(flame_home, "uk-aachen", approval="manual")
    try:
        run = fed.submit(_draft("mean_age.py"))
        _wait_for(lambda: run.logs(node="uk-aachen"), "uk-aachen to review the code")
        decide(
            run.id,
            "uk-aachen",
            approve=False,
            reason="not with this cohort",
            home=flame_home / "sandbox",
        )
        with pytest.raises(AnalysisFailed, match="rejected at uk-aachen: not with this cohort"):
            run.wait(timeout=WAIT)
    finally:
        dump_policy(old, _node_folder(flame_home, "uk-aachen").policy)


def test_rows_leave_a_flame_node_as_on_flame_and_a_strict_node_refuses_them(fed, flame_home):
    run = fed.submit(_draft("leak_rows.py"))
    run.wait(timeout=WAIT)
    rows = run.result()  # flame: every row, unaltered; approval was the control
    assert sorted(len(r) for r in rows) == sorted(
        synthetic.generate(n).record_count for n in ("uk-aachen", "uk-koeln")
    )
    olds = {n: _set_policy(flame_home, n, profile="strict") for n in ("uk-aachen", "uk-koeln")}
    try:
        run = fed.submit(_draft("leak_rows.py"))
        with pytest.raises(AnalysisFailed, match="PolicyRefused") as info:
            run.wait(timeout=WAIT)
        text = str(info.value)
        assert "rule row-level" in text and ("uk-aachen" in text or "uk-koeln" in text)
        assert "result" in text
        with pytest.raises(AnalysisFailed):
            run.result()  # nothing partial was sealed
    finally:
        for name, old in olds.items():
            dump_policy(old, _node_folder(flame_home, name).policy)


def _hub_lines(run) -> list[str]:
    """Every node log line of ``run`` as the hub stores it (what its operator can read)."""
    return [
        log.message
        for node_id in run.record.nodes
        for log in every(
            run._core.find_analysis_node_logs,
            filter={"analysis_id": run.id, "node_id": node_id},
        )
    ]


def test_analysis_log_lines_are_sealed_at_the_hub_and_open_for_the_researcher(fed):
    run = fed.submit(_draft("chatty.py"), nodes=["uk-aachen"])
    run.wait(timeout=WAIT)
    stored = _hub_lines(run)
    assert not any("line 1" in m for m in stored)  # no analysis line in plaintext at the hub
    assert sum(m.startswith("flame-lab-sealed-log:") for m in stored) >= 70
    assert any("finished" in m for m in stored)  # the node's own lines stay readable
    opened = [ln.message for ln in run.logs(node="uk-aachen")]
    assert [f"line {i}" for i in range(70)] == [m for m in opened if m.startswith("line ")]


def test_a_run_over_the_log_caps_drops_lines_and_says_how_many(fed, flame_home):
    old = _set_policy(flame_home, "uk-aachen", release__log_lines=20)
    try:
        run = fed.submit(_draft("chatty.py"), nodes=["uk-aachen"])
        run.wait(timeout=WAIT)
        lines = [ln.message for ln in run.logs(node="uk-aachen")]
        assert sum(m.startswith("line ") for m in lines) < 20
        assert any("dropped" in m and "20 lines" in m for m in lines)
    finally:
        dump_policy(old, _node_folder(flame_home, "uk-aachen").policy)


def test_the_analysis_cannot_read_the_nodes_key_file_nor_reach_the_network(fed, flame_home):
    paths = {n: str(_node_folder(flame_home, n).identity) for n in ("uk-aachen", "uk-koeln")}
    draft = _draft("probe_keys.py", **{"KEY_FILES = {}": f"KEY_FILES = {json.dumps(paths)}"})
    run = fed.submit(draft)
    run.wait(timeout=WAIT)
    for report in run.result():
        assert set(report["files"].values()) <= {"FileNotFoundError", "PermissionError"}
        # the run's own network namespace: no route (101), or only its own loopback (111)
        assert report["network"] in ("errno 101", "errno 111")


def _node_storage(fed, home: Path, name: str):
    """Storage as a node's client sees it: the hub only lets the analysis's nodes write there."""
    secrets = _node_folder(home, name).read_secrets()
    return with_client_credentials(
        fed.endpoints, secrets["clientId"], secrets["clientSecret"]
    ).storage


def test_a_result_forged_in_the_result_bucket_is_rejected(fed, flame_home):
    run = fed.submit(_draft("mean_age.py"))
    run.wait(timeout=WAIT)
    # a data node (or the hub behind it) adds a result sealed by a key nobody trusts
    forger = keys.NodeIdentity.generate()
    record = run.record
    identity = fl.federation.researcher_identity()
    forged = envelope.seal(
        b'{"mean_age": 1}',
        analysis_id=run.id,
        node_id=record.aggregator_id,
        bundle_hash=record.bundle_hash,
        run_nonce=record.run_nonce,
        sequence=0,
        content_type="application/json",
        recipients=[identity.public],
        node=forger,
    )
    bucket = fed._wait_for_bucket(run.id, "RESULT")
    _node_storage(fed, flame_home, "uk-koeln").upload_to_bucket(
        bucket.bucket_id,
        {"file_name": "result-000.flres", "content": forged, "content_type": "x"},
    )
    with pytest.raises(TamperedResult):
        fed.attach(run.id).result()


def test_a_plaintext_file_in_the_result_bucket_is_not_accepted_as_a_result(fed, flame_home):
    run = fed.submit(_draft("mean_age.py"))
    run.wait(timeout=WAIT)
    bucket = fed._wait_for_bucket(run.id, "RESULT")
    _node_storage(fed, flame_home, "uk-koeln").upload_to_bucket(
        bucket.bucket_id,
        {"file_name": "zz-result.json", "content": b'{"mean_age": 1}', "content_type": "x"},
    )
    with pytest.raises(TamperedResult, match="not sealed"):
        fed.attach(run.id).result()


def test_attach_after_a_restart_finds_the_same_analysis_and_result(fed):
    run = fed.submit(_draft("mean_age.py"))
    run.wait(timeout=WAIT)
    first = run.result()
    fl.federation._identities.clear()  # as a new kernel would start
    again = fl.connect().attach(run.id)
    assert again.status().overall == "executed"
    assert again.result() == first


def test_unknown_nodes_are_refused_with_the_known_names(fed):
    with pytest.raises(NotFound, match="nowhere") as info:
        fed.submit(_draft("mean_age.py"), nodes=["nowhere"])
    assert "uk-aachen" in info.value.hint


def test_a_syntax_error_is_refused_before_anything_reaches_the_hub(fed):
    before = len(fed.analyses())
    with pytest.raises(DraftError, match="line 1"):
        fed.submit(fl.Draft.from_files({"analysis.py": "def broken(:\n"}))
    assert len(fed.analyses()) == before


def test_a_subset_of_nodes_runs_the_analysis_alone(fed):
    run = fed.submit(_draft("mean_age.py"), nodes=["uk-koeln"])
    run.wait(timeout=WAIT)
    assert {n.name for n in run.status().nodes} == {"uk-koeln", "aggregator"}
    table = synthetic.generate("uk-koeln").tables["patients.csv"]
    assert run.result()["n"] == len(list(csv.DictReader(io.StringIO(table.decode()))))


def test_cancel_stops_a_running_analysis(fed):
    run = fed.submit(_draft("slow.py"))
    _wait_for(lambda: run.status().overall == "running", "the slow analysis to run")
    run.cancel()
    assert run.status().overall == "cancelled"
    with pytest.raises(AnalysisFailed, match="cancelled"):
        run.wait(timeout=WAIT)


def test_a_killed_node_fails_the_analysis_and_leaves_the_rest_working(fed, flame_home):
    run = fed.submit(_draft("slow.py"))
    _wait_for(
        lambda: (
            run.status().overall == "running"
            and any(ln.message == "waiting" for ln in run.logs(node="uk-koeln"))
        ),
        "uk-koeln to start the slow analysis",
    )
    folder = _node_folder(flame_home, "uk-koeln")
    os.kill(int(folder.pid.read_text()), signal.SIGKILL)
    with pytest.raises(AnalysisFailed, match="uk-koeln went offline"):
        run.wait(timeout=WAIT)
    daemon.up(flame_home / "sandbox")  # restarts the missing agent
    _wait_for(lambda: daemon.agent_pid(folder), "the agent to come back")
    again = fed.submit(_draft("mean_age.py"))
    assert again.wait(timeout=WAIT).overall == "executed"


def test_analyses_survive_a_sandbox_restart_on_another_port(fed, flame_home):
    run = fed.submit(_draft("mean_age.py"))
    run.wait(timeout=WAIT)
    first = run.result()
    old_url = fed.hub_url
    daemon.down(flame_home / "sandbox")
    daemon.up(flame_home / "sandbox")
    again = fl.connect()
    assert run.id in [a.id for a in again.analyses()]
    reattached = again.attach(run.id)
    assert reattached.status().overall == "executed"
    assert reattached.result() == first
    assert reattached.record.hub_url == old_url  # provenance keeps where it was sent


def test_a_bug_in_the_analysis_fails_it_with_type_file_and_line_and_a_sealed_traceback(fed):
    run = fed.submit(_draft("broken.py"))
    with pytest.raises(AnalysisFailed, match=r"KeyError at broken\.py, line 12") as info:
        run.wait(timeout=WAIT)
    assert "missing column" not in str(info.value)  # the message may carry values
    assert not any("missing column" in m for m in _hub_lines(run))
    errors = "\n".join(ln.message for ln in run.logs(level="error"))
    assert "KeyError at broken.py, line 12" in errors and "flame_lab/" not in errors
    everything = "\n".join(ln.message for ln in run.logs())  # opened with the researcher's key
    assert "KeyError: 'missing column'" in everything and 'broken.py", line 12' in everything


def test_every_log_line_arrives_beyond_the_hubs_page_size(fed):
    run = fed.submit(_draft("chatty.py"), nodes=["uk-aachen"])
    run.wait(timeout=WAIT)
    lines = [ln.message for ln in run.logs(node="uk-aachen")]
    assert [f"line {i}" for i in range(70)] == [m for m in lines if m.startswith("line ")]


def test_a_node_requiring_dp_refuses_a_plain_analysis_and_noises_and_charges_a_dp_one(
    fed, flame_home
):
    old = _set_policy(flame_home, "uk-aachen", privacy__require_dp=True)
    try:
        plain = fed.submit(_draft("mean_age.py"))
        with pytest.raises(AnalysisFailed, match="rule require-dp") as info:
            plain.wait(timeout=WAIT)
        assert "uk-aachen" in str(info.value)
        noisy = fed.submit(_draft("dp_count.py"))
        noisy.wait(timeout=WAIT)
        float(noisy.result())
        charged = [ln.message for ln in noisy.logs(node="uk-aachen") if "charged" in ln.message]
        assert charged and "charged epsilon 1" in charged[0]  # the data node's own release
    finally:
        dump_policy(old, _node_folder(flame_home, "uk-aachen").policy)
