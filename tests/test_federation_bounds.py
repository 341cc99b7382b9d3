"""An analysis that waits for a node which never returns is made final on the researcher's side:
``failed``, naming the node and what it waited for, kept in the local record (it does not flip
back) and deleted at the hub (a node that returns does not start it). Only what the node signed
counts as hearing from it: a hub that says the node is online, approved or running, or shows
an old signed statement again, does not stop the bound. A fake hub and a hand-moved clock."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import flame_lab as fl
from flame_lab import deadlines
from flame_lab.deadlines import APPROVAL_WAIT_VAR, NODE_SILENCE_VAR
from flame_lab.errors import AnalysisFailed, FlameLabError
from flame_lab.federation import Analysis
from flame_lab.security.keys import Identity, NodeIdentity
from flame_lab.security.statements import Signer
from tests.fakehub import federation

MEAN_AGE = (Path(fl.__file__).parent / "examples" / "mean_age.py").read_text()
SILENCE = deadlines.DEFAULT_NODE_SILENCE  # a node that signs (and so sends heartbeats)
HUB_SILENCE = deadlines.DEFAULT_UNSIGNED_SILENCE  # the hub's build, a node that signs nothing


@pytest.fixture(scope="module")
def keys():
    names = ("uk-aachen", "uk-koeln", "aggregator")
    return Identity.generate(), {f"id-{n}": NodeIdentity.generate() for n in names}


class Nodes:
    """The nodes' side: each signs what it reports, as a flame_lab node agent does."""

    def __init__(self, core, analysis_id: str, keys: dict[str, NodeIdentity]) -> None:
        self.core, self.analysis_id = core, analysis_id
        self.signers = {i: Signer(k, i) for i, k in keys.items()}

    def link(self, name: str):
        return next(x for x in self.core.links if x.node_id == f"id-{name}")

    def say(self, name, approval=None, execution=None, progress=0, text=""):
        link = self.link(name)
        link.approval_status, link.execution_status = approval, execution
        link.execution_progress = progress
        link.comment = self.signers[link.node_id].status(
            self.analysis_id, approval, execution, progress, text
        )

    def log(self, name, text, level="notice"):
        node_id = f"id-{name}"
        self.core.node_logs.append(
            SimpleNamespace(
                analysis_id=self.analysis_id,
                node_id=node_id,
                level=level,
                time="2026-12-03T08:00:00",
                message=self.signers[node_id].log(self.analysis_id, level, text),
            )
        )

    def distribute(self):
        analysis = self.core.analyses[self.analysis_id]
        analysis.build_status = analysis.distribution_status = "executed"


@pytest.fixture
def setup(tmp_path, keys):
    identity, node_keys = keys
    fed, core = federation(tmp_path)
    fed.node_keys = {i: k.public for i, k in node_keys.items()}
    draft = fl.Draft.from_files({"mean_age.py": MEAN_AGE}, entrypoint="mean_age.py")
    run = fed.submit(draft, identity=identity)
    return fed, core, run, Nodes(core, run.id, node_keys)


def watch(run, seconds: float, step: float = 60.0):
    """Look every ``step`` seconds for ``seconds``, as the monitor or wait() does; the last
    status (the looks stop early at a final one)."""
    clock, status = run.federation.clock, run.status()
    end = clock.now() + seconds
    while not status.done and clock.now() < end:
        clock.advance(min(step, end - clock.now()))
        status = run.status()
    return status


def _running_but_koeln(nodes: Nodes) -> None:
    """Both data nodes approved; aachen ran, the aggregator runs; koeln never starts."""
    nodes.say("uk-aachen", "approved")
    nodes.say("uk-koeln", "approved")
    nodes.distribute()
    nodes.say("uk-aachen", "approved", "executed", 100)
    nodes.say("aggregator", "approved", "started")


def test_a_node_that_never_starts_fails_the_analysis_naming_it(setup):
    fed, core, run, nodes = setup
    _running_but_koeln(nodes)
    first = run.status()
    assert first.overall == "running"
    (why,) = [w for w in first.waiting if "uk-koeln" in w]
    assert "waiting for uk-koeln to start" in why and "gives up after 10 min more of silence" in why
    assert NODE_SILENCE_VAR in why
    nodes.say("aggregator", "approved", "executing", 50)  # the aggregator is alive
    assert watch(run, SILENCE - 1).overall == "running"
    final = watch(run, 2)
    assert final.overall == "failed" and final.done and final.waiting == []
    node, reason = final.failure
    assert node == "uk-koeln"
    assert "uk-koeln did not start the analysis" in reason
    assert f"{NODE_SILENCE_VAR}=600 s" in reason and "10 min" in reason
    assert run.id not in core.analyses  # cancelled at the hub: a returning node finds nothing
    record = fed.store.load(run.id)
    assert record.failed_at and record.withdrawn
    assert record.failure["nodeName"] == "uk-koeln"
    assert {n["name"] for n in record.final_nodes} == {"uk-aachen", "uk-koeln", "aggregator"}
    assert final.to_dict()["failure"] == {"nodeName": "uk-koeln", "reason": reason}


def test_the_verdict_does_not_flip_back_when_the_hub_shows_the_node_done(setup):
    fed, core, run, nodes = setup
    _running_but_koeln(nodes)
    run.status()
    snapshot = core.analyses[run.id]
    assert watch(run, SILENCE + 1).overall == "failed"
    # the hub brings the analysis back and shows every node executed (as the node signed)
    core.analyses[run.id] = snapshot
    for name in ("uk-aachen", "uk-koeln", "aggregator"):
        core.links.append(_link(name, run.id))
        nodes.say(name, "approved", "executed", 100)
    for handle in (run, fed.attach(run.id), Analysis(fed, fed.store.load(run.id))):
        status = handle.status()
        assert status.overall == "failed" and status.failure[0] == "uk-koeln"
    with pytest.raises(AnalysisFailed, match="failed at uk-koeln: uk-koeln did not start"):
        run.wait()


def _link(name: str, analysis_id: str) -> SimpleNamespace:
    return SimpleNamespace(
        id=f"link-{name}",
        analysis_id=analysis_id,
        node_id=f"id-{name}",
        approval_status=None,
        execution_status=None,
        execution_progress=0,
        comment=None,
        node=SimpleNamespace(online=True),
    )


def test_a_hub_that_says_the_node_is_online_and_approved_does_not_stop_the_bound(setup):
    _fed, _core, run, nodes = setup
    nodes.say("uk-aachen", "approved")
    koeln = nodes.link("uk-koeln")
    # the hub's own word, unsigned: online, approved, even executing
    koeln.approval_status, koeln.execution_status, koeln.execution_progress = (
        "approved",
        "executing",
        40,
    )
    koeln.comment, koeln.node = "all good", SimpleNamespace(online=True)
    nodes.distribute()
    assert run.status().overall != "failed"
    for step in range(int(SILENCE / 60) - 1):  # the hub keeps changing what it shows: none
        koeln.execution_progress = 40 + step  # of it is koeln's word
        assert watch(run, 60).overall != "failed"
    final = watch(run, 61)
    assert final.overall == "failed" and final.failure[0] == "uk-koeln"
    assert "did not take up the analysis for review" in final.failure[1]


def test_an_old_signed_statement_shown_again_does_not_count(setup):
    fed, _core, run, nodes = setup
    _running_but_koeln(nodes)
    nodes.say("uk-koeln", "approved", "started", 10)
    koeln = nodes.link("uk-koeln")
    old = koeln.comment
    run.status()
    nodes.say("uk-koeln", "approved", "executing", 20)
    newer, heard = koeln.comment, fed.clock.now()
    watch(run, 60)  # heard: 20 %
    for step in range(70):  # the hub alternates between the two statements it already showed
        koeln.comment, koeln.execution_progress, koeln.execution_status = (
            (old, 10, "started") if koeln.comment == newer else (newer, 20, "executing")
        )
        nodes.say("aggregator", "approved", "executing", step)  # the aggregator keeps talking
        status = watch(run, 60)
        if status.done:
            break
    assert fed.clock.now() - heard == SILENCE  # given up as if the hub had shown nothing new
    assert status.overall == "failed" and status.failure[0] == "uk-koeln"
    assert "fell silent while running the analysis" in status.failure[1]


def test_a_node_that_keeps_reporting_is_waited_for(setup):
    fed, _core, run, nodes = setup
    _running_but_koeln(nodes)
    for step in range(1, 10):  # 4.5 hours of a slow analysis that says where it is
        nodes.say("uk-koeln", "approved", "executing", step * 10)
        nodes.say("aggregator", "approved", "executing", step * 5)
        assert watch(run, SILENCE / 2).overall == "running"
    assert fed.store.load(run.id).failed_at is None


def test_a_signed_log_line_counts_as_hearing_from_the_node(setup):
    _fed, _core, run, nodes = setup
    _running_but_koeln(nodes)
    nodes.say("uk-koeln", "approved", "started")
    watch(run, SILENCE - 10)
    nodes.log("uk-koeln", "epoch 3 of 10")
    nodes.log("aggregator", "waiting for uk-koeln")
    assert watch(run, 20).overall == "running"  # read from the logs before giving up
    assert watch(run, SILENCE - 30).overall == "running"
    assert watch(run, 60).overall == "failed"


def test_a_manual_approval_gets_its_own_longer_limit(setup):
    _fed, _core, run, nodes = setup
    nodes.say("uk-aachen", "approved")
    nodes.log("uk-koeln", "the code verified; waiting for the node admin")
    status = watch(run, SILENCE + 1)
    assert status.overall == "pending"
    (why,) = [w for w in status.waiting if "uk-koeln" in w]
    assert "waiting for uk-koeln to approve" in why and APPROVAL_WAIT_VAR in why
    assert "gives up after 7.0 d more" in why
    assert watch(run, deadlines.DEFAULT_APPROVAL_WAIT - SILENCE - 2, step=6 * 3600).overall == (
        "pending"
    )
    final = watch(run, 2)
    assert final.overall == "failed"
    assert final.failure[1].startswith("the admin of uk-koeln did not approve or reject")
    assert f"{APPROVAL_WAIT_VAR}=604800 s" in final.failure[1]


def test_an_unsigned_log_line_does_not_buy_the_approval_limit(setup):
    _fed, core, run, nodes = setup
    nodes.say("uk-aachen", "approved")
    core.node_logs.append(
        SimpleNamespace(
            analysis_id=run.id,
            node_id="id-uk-koeln",
            level="notice",
            time="2026-12-03T08:00:00",
            message="uk-koeln: waiting for the node admin",  # the hub's invention
        )
    )
    final = watch(run, SILENCE + 1)
    assert final.overall == "failed" and "did not take up the analysis" in final.failure[1]


def test_after_a_hub_outage_a_node_gets_the_grace_to_report(setup):
    fed, core, run, nodes = setup
    _running_but_koeln(nodes)
    watch(run, SILENCE - 300)
    core.down = True  # the hub is away for an hour: no node can report meanwhile
    for _ in range(60):
        fed.clock.advance(60)
        with pytest.raises(fl.errors.HubUnreachable):
            run.status()
    core.down = False
    assert run.status().overall == "running"  # back: the nodes get FLAME_LAB_HUB_OUTAGE
    assert watch(run, 119, step=1).overall == "running"
    assert watch(run, 2, step=1).overall == "failed"


def test_looking_seldom_does_not_put_the_bound_off(setup):
    fed, _core, run, nodes = setup
    _running_but_koeln(nodes)
    run.status()
    fed.clock.advance(3 * SILENCE)  # nobody looked; the hub was there all along
    assert run.status().overall == "failed"


def test_the_verdict_is_kept_even_when_the_hub_cannot_be_told_at_once(setup):
    fed, core, run, nodes = setup
    _running_but_koeln(nodes)
    watch(run, SILENCE - 60)
    core.faults["delete_analysis"] = ["down"]
    assert watch(run, 61).overall == "failed"
    record = fed.store.load(run.id)
    assert record.failed_at and not record.withdrawn and run.id in core.analyses
    assert fed.attach(run.id).status().overall == "failed"  # the next look tells the hub
    assert run.id not in core.analyses and fed.store.load(run.id).withdrawn


def test_a_verdict_made_by_another_handle_is_adopted(setup):
    fed, _core, run, nodes = setup
    _running_but_koeln(nodes)
    other = fed.attach(run.id)
    run.status()
    assert watch(other, SILENCE + 1).overall == "failed"
    assert run.status().overall == "failed"  # no hub reading changes that
    run.cancel()  # cancelling a failed analysis leaves the failure as it was
    assert run.status().overall == "failed"


def test_limits_come_from_the_environment(setup, monkeypatch):
    _fed, _core, run, nodes = setup
    monkeypatch.setenv(NODE_SILENCE_VAR, "600")
    _running_but_koeln(nodes)
    assert "limit FLAME_LAB_NODE_SILENCE=600 s" in watch(run, 601).failure[1]
    monkeypatch.setenv(APPROVAL_WAIT_VAR, "soon")
    with pytest.raises(FlameLabError, match="FLAME_LAB_APPROVAL_WAIT='soon'"):
        deadlines.Limits.from_env()


def test_wait_ends_with_the_verdict(setup, monkeypatch):
    _fed, _core, run, nodes = setup
    monkeypatch.setenv(NODE_SILENCE_VAR, "3")
    monkeypatch.setenv("FLAME_LAB_HUB_OUTAGE", "1")
    _running_but_koeln(nodes)
    with pytest.raises(AnalysisFailed, match="uk-koeln did not start the analysis"):
        run.wait()


def test_the_status_json_keeps_its_shape(setup):
    _fed, _core, run, nodes = setup
    _running_but_koeln(nodes)
    keys = {
        "analysis_id",
        "name",
        "overall",
        "progress",
        "nodes",
        "build",
        "distribution",
        "failure",
        "result_available",
        "waiting",
    }
    assert set(run.status().to_dict()) == keys
    given_up = watch(run, SILENCE + 1).to_dict()
    assert set(given_up) == keys and given_up["overall"] == "failed"
    assert set(given_up["nodes"][0]) == set(run.status().nodes[0].to_dict())


def test_phase_counts_only_what_the_node_signed():
    node = SimpleNamespace(type="default", approval="approved", execution="executing")
    assert deadlines.phase_of(SimpleNamespace(**vars(node), verified=True), True) == "run"
    assert deadlines.phase_of(SimpleNamespace(**vars(node), verified=False), True) == "review"
    assert deadlines.phase_of(SimpleNamespace(**vars(node), verified=None), True) == "run"
    done = SimpleNamespace(type="default", approval="approved", execution="executed", verified=True)
    assert deadlines.phase_of(done, True) == ""
    waiting = SimpleNamespace(type="default", approval="approved", execution=None, verified=True)
    assert deadlines.phase_of(waiting, False) == "" and deadlines.phase_of(waiting, True) == "start"


def test_a_repeated_or_older_stamp_is_not_news():
    entry: dict = {}
    assert deadlines.heard_new(entry, ("s1", 3))
    assert not deadlines.heard_new(entry, ("s1", 3))
    assert not deadlines.heard_new(entry, ("s1", 2))
    assert deadlines.heard_new(entry, ("s2", 1))  # a restarted node's new session


def test_the_countdown_changes_by_the_minute_at_most():
    limits = deadlines.Limits(silence=3600, approval=7 * 86400, grace=120)
    entry = {"phase": "start", "since": 0.0}
    texts = {deadlines.countdown(entry, t, limits) for t in range(0, 60)}
    assert texts == {"gives up after 60 min more of silence (FLAME_LAB_NODE_SILENCE)"}
    assert "under a minute" in deadlines.countdown(entry, 3599, limits)
    assert deadlines.countdown({"phase": ""}, 10, limits) == ""


def test_the_reason_is_in_the_text_and_the_terminal(setup):
    from flame_lab.cli.analyses import node_line

    _fed, _core, run, nodes = setup
    _running_but_koeln(nodes)
    final = watch(run, SILENCE + 1)
    text = final.to_text()
    assert "failed at uk-koeln: uk-koeln did not start the analysis" in text
    assert any("failed at uk-koeln: uk-koeln did not start" in ln for ln in node_line(final))


def test_a_look_does_not_overwrite_what_another_handle_saved(setup):
    fed, _core, run, nodes = setup
    _running_but_koeln(nodes)
    run.status()
    other = fed.attach(run.id)
    other.record.result_hashes = ["opened elsewhere"]
    fed.store.save(other.record)
    nodes.say("uk-koeln", "approved", "started")
    run.status()  # heard from koeln: this handle saves its watch
    stored = fed.store.load(run.id)
    assert stored.result_hashes == ["opened elsewhere"]
    assert stored.watch["id-uk-koeln"]["phase"] == "run"


def test_a_hub_that_never_builds_or_distributes_is_not_waited_for_ever(setup):
    fed, core, run, nodes = setup
    nodes.say("uk-aachen", "approved")
    nodes.say("uk-koeln", "approved")  # every data node approved; the fake hub never builds
    assert run.status(advance=False).overall == "approved"
    fed.clock.advance(3 * SILENCE)
    assert run.status(advance=False).overall == "approved"  # a look that drives nothing
    assert watch(run, HUB_SILENCE - 60).overall == "approved"
    final = watch(run, 61)
    assert final.overall == "failed" and final.failure[0] == "hub"
    assert final.failure[1].startswith("the hub did not build and distribute the analysis")
    assert "failed at hub: the hub did not build" in final.to_text()
    assert run.id not in core.analyses


def test_a_hub_that_builds_slowly_but_moves_is_waited_for(setup):
    _fed, core, run, nodes = setup
    nodes.say("uk-aachen", "approved")
    nodes.say("uk-koeln", "approved")
    analysis = core.analyses[run.id]
    for state in ("starting", "started", "executing"):
        analysis.build_status = state
        assert watch(run, HUB_SILENCE - 60).overall == "approved"
    analysis.build_status = "executed"
    analysis.distribution_status = "executed"
    nodes.say("uk-aachen", "approved", "started")
    nodes.say("uk-koeln", "approved", "started")
    assert run.status().overall == "running"
