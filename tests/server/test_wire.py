"""The REST shapes: camelCase everywhere, ISO log times, a result flag but never a result."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flame_lab.federation import AnalysisStatus, LogLine, NodeInfo, NodeState
from flame_lab.records import SubmissionRecord
from flame_lab.server import wire

RECORD = SubmissionRecord(
    analysis_id="a1",
    name="count",
    hub_url="http://hub/core",
    project_id="p1",
    bundle_hash="ab" * 32,
    run_nonce="n",
    signer="k",
    recipients=["k"],
    nodes={"n1": "uk-aachen", "n2": "aggregator"},
    aggregator_id="n2",
    node_keys={},
    submitted_at="2026-11-28T01:00:00+00:00",
)
NODES = (
    NodeState("n1", "uk-aachen", "default", "rejected", None, 0, "not our data"),
    NodeState("n2", "aggregator", "aggregator", "approved", None, 0, None),
)


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_detail_keys_are_camel_case_and_failure_names_the_node():
    status = AnalysisStatus("a1", "count", "rejected", 0, NODES, failure=("uk-aachen", "no"))
    body = wire.detail(status, RECORD)
    assert not [k for k in _keys(body) if "_" in k]
    assert body["failure"] == {"nodeName": "uk-aachen", "reason": "no"}
    assert body["createdAt"] == RECORD.submitted_at and body["bundleHash"] == RECORD.bundle_hash
    assert body["nodes"][0]["comment"] == "not our data"


def test_result_available_is_only_a_flag():
    status = AnalysisStatus("a1", "count", "executed", 100, NODES, result_available=True)
    body = wire.detail(status, RECORD)
    assert body["resultAvailable"] is True
    assert not [k for k in _keys(body) if "result" in k.lower() and k != "resultAvailable"]


def test_node_and_provenance_shapes():
    assert wire.node(NodeInfo("n1", "uk-aachen", "default", True)) == {
        "id": "n1",
        "name": "uk-aachen",
        "type": "default",
        "online": True,
    }
    assert wire.provenance(RECORD)["nodes"] == ["aggregator", "uk-aachen"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("1795828344333", "2026-11-28T01:12:24.333+00:00"),  # milliseconds (the sandbox)
        ("1795828344333000000", "2026-11-28T01:12:24.333+00:00"),  # nanoseconds (Loki)
        ("1795828344", "2026-11-28T01:12:24.000+00:00"),  # seconds
        (datetime(2026, 11, 28, 1, 12, tzinfo=UTC), "2026-11-28T01:12:00.000+00:00"),
        ("2026-11-28T01:12:24Z", "2026-11-28T01:12:24Z"),  # already text: unchanged
    ],
)
def test_log_times_become_iso_8601(given, expected):
    assert wire.timestamp(given) == expected
    line = wire.log_line(LogLine(given, "n1", "uk-aachen", "info", "hello"))
    assert line == {"time": expected, "nodeName": "uk-aachen", "level": "info", "message": "hello"}


def test_error_info_is_message_and_hint():
    from flame_lab.errors import SandboxError

    assert wire.error_info(SandboxError("down", hint="start it")) == {
        "message": "down",
        "hint": "start it",
    }
    assert wire.error_info(None) is None


def test_what_an_unfinished_analysis_waits_for_is_listed_and_gone_once_final():
    why = "waiting for uk-aachen to approve <b>"
    waiting = (NodeState("n1", "uk-aachen", "default", None, None, 0, None, waiting=why),)
    status = AnalysisStatus("a1", "count", "pending", 0, waiting)
    assert wire.summary(status, RECORD)["waiting"] == [why]  # JSON: the panel escapes it
    assert wire.detail(status, RECORD)["waiting"] == [why]
    final = AnalysisStatus("a1", "count", "cancelled", 0, waiting)
    assert wire.summary(final, RECORD)["waiting"] == []
