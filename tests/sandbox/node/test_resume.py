"""What a restarted aggregator does with a run its agent lost, decided from its own state file
and disk: a sealed result (kept whole, or already uploaded) finishes the run as executed; a
kept result with a file missing, or none sealed, fails it by name. Nothing here runs code."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from flame_lab.hubclient import hub_outage
from flame_lab.sandbox.node.agent import NodeAgent
from flame_lab.sandbox.node.heartbeat import Heartbeat
from flame_lab.security.keys import NodeIdentity
from flame_lab.security.statements import Signer

AID = "analysis-1"


@pytest.fixture
def hub():
    return SimpleNamespace(links={}, logs=[], uploads=[])


@pytest.fixture
def agent(tmp_path: Path, hub) -> NodeAgent:
    """An aggregator's agent after a restart (state from its file), wired to a fake hub."""
    agent = NodeAgent.__new__(NodeAgent)
    agent.folder = SimpleNamespace(name="aggregator", runs=tmp_path / "runs")
    agent.node_id, agent.type = "id-aggregator", "aggregator"
    agent.signer = Signer(NodeIdentity.generate(), agent.node_id)
    agent._links, agent._sending, agent._lock = {}, {}, threading.Lock()
    agent.heartbeat, agent.runs, agent.state = Heartbeat(), {}, {}
    agent.keep_state, agent.patience = False, hub_outage()

    def update(link_id, **fields):
        for name, value in fields.items():
            setattr(hub.links[link_id], name, value)

    core = SimpleNamespace(
        update_analysis_node=update,
        create_analysis_node_log=lambda a, n, level, text: hub.logs.append(text),
        find_analysis_buckets=lambda filter: [SimpleNamespace(bucket_id="b1")],
    )
    storage = SimpleNamespace(upload_to_bucket=lambda b, *files: hub.uploads.append(files))
    agent.clients = SimpleNamespace(
        core=core, storage=storage, endpoints=SimpleNamespace(core_url="http://hub")
    )
    return agent


def running_link(hub) -> SimpleNamespace:
    link = SimpleNamespace(
        id="link-1",
        analysis_id=AID,
        node_id="id-aggregator",
        approval_status="approved",
        execution_status="executing",
        execution_progress=0,
        comment=None,
    )
    hub.links[link.id] = link
    return link


def keep(agent: NodeAgent, files: dict[str, bytes]) -> None:
    folder = agent._outbox(AID)
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    agent.state[AID] = {
        "phase": "running",
        "outbox": {n: "application/octet-stream" for n in files},
    }


def test_a_result_kept_whole_is_uploaded_as_it_was_and_the_run_reported_executed(agent, hub):
    link = running_link(hub)
    keep(agent, {"result-000.flres": b"sealed-0", "result-001.flres": b"sealed-1"})
    agent._track(link)
    assert agent._resume_sealed(link, agent.state[AID]) is None
    (files,) = hub.uploads
    assert [(f["file_name"], f["content"]) for f in files] == [
        ("result-000.flres", b"sealed-0"),
        ("result-001.flres", b"sealed-1"),
    ]
    assert link.execution_status == "executed" and link.execution_progress == 100
    state = agent.state[AID]
    assert state["phase"] == "executed" and state["reported"] and not state.get("outbox")
    assert any("restarted after the analysis had sealed its final result" in m for m in hub.logs)


def test_a_result_already_uploaded_is_reported_executed_without_another_upload(agent, hub):
    link = running_link(hub)
    agent.state[AID] = {"phase": "running", "resultUploaded": True}
    agent._track(link)
    assert agent._resume_sealed(link, agent.state[AID]) is None
    assert hub.uploads == [] and link.execution_status == "executed"


def test_a_kept_result_with_a_file_missing_is_named_and_not_uploaded(agent, hub):
    link = running_link(hub)
    keep(agent, {"result-000.flres": b"sealed-0", "result-001.flres": b"sealed-1"})
    (agent._outbox(AID) / "result-001.flres").unlink()
    why = agent._resume_sealed(link, agent.state[AID])
    assert why == "; the sealed result kept on its disk is incomplete (missing result-001.flres)"
    assert hub.uploads == [] and link.execution_status == "executing"


def test_a_run_that_sealed_nothing_says_so(agent, hub):
    link = running_link(hub)
    agent.state[AID] = {"phase": "running"}
    assert agent._resume_sealed(link, agent.state[AID]) == "; its final result had not been sealed"
    agent.type = "default"  # a data node seals nothing: the restart alone is the reason
    assert agent._resume_sealed(link, agent.state[AID]) == ""
    assert hub.uploads == []


def test_a_data_node_ends_its_part_only_on_the_aggregators_own_signed_executed(agent):
    """The hub may show the aggregator executed; only its signature, by its pinned key, for
    this analysis and this very status, lets a data node stop early and call its part over."""
    from flame_lab.sandbox.node.layout import PeerPin

    aggregator = NodeIdentity.generate()
    agent.node_id, agent.type = "id-uk-aachen", "default"
    agent.pins = {"id-aggregator": PeerPin("id-aggregator", "aggregator", aggregator.public)}
    said = Signer(aggregator, "id-aggregator")

    def shown(comment, execution="executed", node_id="id-aggregator"):
        return SimpleNamespace(
            node_id=node_id,
            approval_status="approved",
            execution_status=execution,
            execution_progress=100,
            comment=comment,
        )

    signed = said.status(AID, "approved", "executed", 100, "done")
    assert agent._signed_executed(AID, shown(signed))
    assert not agent._signed_executed(AID, shown("done"))  # the hub's word alone
    forged = Signer(NodeIdentity.generate(), "id-aggregator").status(
        AID, "approved", "executed", 100, "done"
    )
    assert not agent._signed_executed(AID, shown(forged))  # not the pinned key
    other = said.status("analysis-2", "approved", "executed", 100, "done")
    assert not agent._signed_executed(AID, shown(other))  # another analysis's
    running = said.status(AID, "approved", "executing", 40, "working")
    assert not agent._signed_executed(AID, shown(running))  # "executing" shown as executed
    assert not agent._signed_executed(AID, shown(signed, node_id="id-unpinned"))
