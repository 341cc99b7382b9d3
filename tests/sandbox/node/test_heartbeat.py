"""A busy node's heartbeat: a node agent re-signs its status every FLAME_LAB_HEARTBEAT while it
runs an analysis or waits for its admin, the researcher's client counts each as hearing from
it, and so a slow silent run is waited for while a dead node is given up on within
FLAME_LAB_NODE_SILENCE. A hub can neither forge a heartbeat nor keep a dead node alive by
showing its old ones again. The agent's clock and the client's are moved by hand."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

import flame_lab as fl
from flame_lab import deadlines
from flame_lab.hubclient import hub_outage
from flame_lab.sandbox.node.agent import NodeAgent
from flame_lab.sandbox.node.heartbeat import HEARTBEAT_VAR, Heartbeat
from flame_lab.security import statements
from flame_lab.security.keys import Identity, NodeIdentity
from flame_lab.security.statements import Signer
from tests.fakehub import federation

MEAN_AGE = (Path(fl.__file__).parent / "examples" / "mean_age.py").read_text()
SILENCE = deadlines.DEFAULT_NODE_SILENCE
NAMES = ("uk-aachen", "uk-koeln", "aggregator")


class Ticks:
    """The agent's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def keys():
    return Identity.generate(), {f"id-{n}": NodeIdentity.generate() for n in NAMES}


def agent_on(core, node_id: str, identity: NodeIdentity, ticks: Ticks) -> NodeAgent:
    """A node agent's reporting part, wired to the fake hub (no node folder, no loop)."""
    agent = NodeAgent.__new__(NodeAgent)
    agent.folder = SimpleNamespace(name=node_id.removeprefix("id-"))
    agent.node_id = node_id
    agent.signer = Signer(identity, node_id)
    agent._links, agent._sending, agent._lock = {}, {}, threading.Lock()
    agent.heartbeat = Heartbeat(60.0, ticks)
    agent.runs, agent.state = {}, {}
    agent.keep_state = False
    agent.patience = hub_outage()

    def update_analysis_node(link_id, **fields):
        link = next(x for x in core.links if x.id == link_id)
        for name, value in fields.items():
            setattr(link, name, value)

    hub = SimpleNamespace(update_analysis_node=update_analysis_node)
    agent.clients = SimpleNamespace(core=hub, endpoints=SimpleNamespace(core_url="http://hub"))
    return agent


@pytest.fixture
def setup(tmp_path, keys):
    """Every node approved and running; the agents' statuses go to the fake hub's links."""
    identity, node_keys = keys
    fed, core = federation(tmp_path)
    fed.node_keys = {i: k.public for i, k in node_keys.items()}
    run = fed.submit(
        fl.Draft.from_files({"mean_age.py": MEAN_AGE}, entrypoint="mean_age.py"),
        identity=identity,
    )
    ticks = Ticks()
    agents = {}
    for node_id, key in node_keys.items():
        agent = agent_on(core, node_id, key, ticks)
        link = next(x for x in core.links if x.node_id == node_id)
        agent._track(link)
        agent._update(str(link.id), approval_status="approved")
        agents[node_id.removeprefix("id-")] = agent
    analysis = core.analyses[run.id]
    analysis.build_status = analysis.distribution_status = "executed"
    for agent in agents.values():
        link_id = next(k for k in agent._links)
        agent._update(link_id, execution_status="executing", execution_progress=10)
        agent.runs[run.id] = object()  # a run in progress at every node
    return fed, core, run, agents, ticks


def minutes(run, agents, ticks, count: int, beating=NAMES):
    """``count`` minutes on both clocks; the ``beating`` agents tick (as their loop does) and
    the client looks once a minute; the last status."""
    status = run.status()
    for _ in range(count):
        ticks.t += 60
        run.federation.clock.advance(60)
        for name in beating:
            agents[name].beat()
        status = run.status()
        if status.done:
            break
    return status


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(HEARTBEAT_VAR, "15")
    assert Heartbeat.from_env().interval == 15
    monkeypatch.setenv(HEARTBEAT_VAR, "0")
    with pytest.raises(fl.errors.FlameLabError, match="FLAME_LAB_HEARTBEAT='0'"):
        Heartbeat.from_env()


def test_a_busy_node_beats_once_an_interval_a_new_statement_the_client_verifies(setup, keys):
    _fed, core, run, agents, ticks = setup
    koeln = agents["uk-koeln"]
    link = next(x for x in core.links if x.node_id == "id-uk-koeln")
    said = []

    def opened():
        return statements.open_status(
            link.comment,
            analysis_id=run.id,
            node_id="id-uk-koeln",
            approval=link.approval_status,
            execution=link.execution_status,
            progress=int(link.execution_progress),
            key=keys[1]["id-uk-koeln"].public,
        )

    said.append(opened())
    ticks.t += 59
    koeln.beat()
    assert opened() == said[-1]  # nothing yet: its last status is not a minute old
    for _ in range(3):
        ticks.t += 1 if len(said) == 1 else 60
        koeln.beat()
        now = opened()
        assert now.verified and now.text == said[0].text
        assert now.stamp[0] == said[-1].stamp[0] and now.stamp[1] > said[-1].stamp[1]
        assert (link.execution_status, link.execution_progress) == ("executing", 10)
        said.append(now)
    koeln._update(str(link.id), execution_progress=50)  # a real status resets the interval
    ticks.t += 59
    koeln.beat()
    assert opened().stamp[1] == said[-1].stamp[1] + 1
    koeln.runs.clear()  # the run ended here: no more heartbeats
    ticks.t += 600
    koeln.beat()
    assert opened().stamp[1] == said[-1].stamp[1] + 1


def test_a_node_waiting_for_its_admin_beats_without_restating_an_approval(setup, keys):
    _fed, core, run, agents, ticks = setup
    aachen = agents["uk-aachen"]
    link = next(x for x in core.links if x.node_id == "id-uk-aachen")
    link_id = str(link.id)
    aachen.runs.clear()
    aachen._links[link_id].update(approval=None, execution=None, progress=0)
    link.approval_status, link.execution_status, link.execution_progress = None, None, 0
    calls = []
    hub = aachen.clients.core
    update = hub.update_analysis_node
    hub.update_analysis_node = lambda i, **f: (calls.append(f), update(i, **f))
    ticks.t += 600
    aachen.beat()
    assert calls == []  # idle: not running, not waiting for its admin
    aachen.state[run.id] = {"phase": "awaiting-admin"}
    aachen.beat()  # from now on busy: its first heartbeat is an interval away
    assert calls == []
    ticks.t += 60
    aachen.beat()
    assert [set(c) for c in calls] == [{"comment"}]  # approvals are final at the hub
    opened = statements.open_status(
        link.comment,
        analysis_id=run.id,
        node_id="id-uk-aachen",
        approval=None,
        execution=None,
        progress=0,
        key=keys[1]["id-uk-aachen"].public,
    )
    assert opened.verified


def test_a_silent_long_run_is_waited_for_while_the_nodes_beat(setup):
    fed, _core, run, agents, ticks = setup
    status = minutes(run, agents, ticks, int(3 * SILENCE / 60))  # three limits, not a word
    assert status.overall == "running" and fed.store.load(run.id).failed_at is None


def test_a_node_whose_heartbeat_stops_is_given_up_on_within_the_silence(setup):
    fed, core, run, agents, ticks = setup
    minutes(run, agents, ticks, 5)
    died = fed.clock.now()
    status = minutes(run, agents, ticks, 60, beating=("uk-aachen", "aggregator"))
    assert status.overall == "failed" and status.failure[0] == "uk-koeln"
    assert "uk-koeln fell silent while running the analysis" in status.failure[1]
    assert fed.clock.now() - died <= SILENCE + 60
    assert run.id not in core.analyses


def test_a_hub_cannot_keep_a_dead_node_alive_with_its_old_heartbeats(setup):
    """The hub saw every heartbeat koeln sent; after koeln died it shows them again in turn,
    with the status each signed: none is new, so the bound runs from the last real one."""
    fed, core, run, agents, ticks = setup
    link = next(x for x in core.links if x.node_id == "id-uk-koeln")
    seen = []
    for _ in range(8):
        minutes(run, agents, ticks, 1)
        seen.append(link.comment)
    died = fed.clock.now()
    status = run.status()
    for step in range(60):
        link.comment = seen[step % len(seen)]
        status = minutes(run, agents, ticks, 1, beating=("uk-aachen", "aggregator"))
        if status.done:
            break
    assert status.overall == "failed" and status.failure[0] == "uk-koeln"
    assert SILENCE - 60 <= fed.clock.now() - died <= SILENCE + 60


def test_a_hub_cannot_forge_a_heartbeat(setup, keys):
    """Nor make one up from what others signed: koeln's heartbeat for another analysis, another
    node's heartbeat, or koeln's last one with a changed number are not koeln's word here."""
    fed, core, run, agents, ticks = setup
    _, node_keys = keys
    link = next(x for x in core.links if x.node_id == "id-uk-koeln")
    minutes(run, agents, ticks, 1)
    last, died = link.comment, fed.clock.now()
    koeln_elsewhere = Signer(node_keys["id-uk-koeln"], "id-uk-koeln")
    aachen = Signer(node_keys["id-uk-aachen"], "id-uk-aachen")
    body = statements.unsigned_text(last)
    session, seq = last.rsplit("[flame-lab-signed v1 ", 1)[1].split()[:2]
    forgeries = [
        koeln_elsewhere.status("another-analysis", "approved", "executing", 10, body),
        aachen.status(run.id, "approved", "executing", 10, body),
        last.replace(f" {session} {seq} ", f" {session} {int(seq) + 100} "),
    ]
    status = run.status()
    for step in range(60):
        link.comment = forgeries[step % len(forgeries)]
        status = minutes(run, agents, ticks, 1, beating=("uk-aachen", "aggregator"))
        if status.done:
            break
    assert status.overall == "failed" and status.failure[0] == "uk-koeln"
    assert fed.clock.now() - died <= SILENCE + 60


def test_a_node_that_signs_nothing_keeps_the_hour(setup):
    """A real FLAME node (no pinned key, no heartbeat) is judged by what the hub shows, with
    the longer limit it had before heartbeats."""
    fed, core, run, agents, ticks = setup
    fed.node_keys.pop("id-uk-koeln")
    run.record.node_keys.pop("id-uk-koeln")
    link = next(x for x in core.links if x.node_id == "id-uk-koeln")
    link.comment = "running"
    limit = deadlines.DEFAULT_UNSIGNED_SILENCE
    status = minutes(run, agents, ticks, int(limit / 60) - 2, beating=("uk-aachen", "aggregator"))
    assert status.overall == "running"
    status = minutes(run, agents, ticks, 3, beating=("uk-aachen", "aggregator"))
    assert status.overall == "failed" and status.failure[0] == "uk-koeln"
    assert f"FLAME_LAB_NODE_SILENCE={limit:g} s" in status.failure[1]


def test_a_heartbeat_never_overtakes_a_status_in_flight(setup):
    """While the run's own status is on its way (e.g. its last word, executed), a heartbeat
    is skipped: an older status re-signed must not land after it at the hub."""
    _fed, core, _run, agents, ticks = setup
    koeln = agents["uk-koeln"]
    link = next(x for x in core.links if x.node_id == "id-uk-koeln")
    before = link.comment
    sending = koeln._sending[str(link.id)]
    sending.acquire()  # the run thread is sending
    try:
        ticks.t += 600
        koeln.beat()
        assert link.comment == before
    finally:
        sending.release()
    ticks.t += 60
    koeln.beat()
    assert link.comment != before
