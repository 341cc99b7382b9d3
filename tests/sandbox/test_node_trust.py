"""A node obeys its own admin, not the hub: a hostile hub plays each attack here and loses.

The "hub" is played by a client that writes what a hub could write (the node's link, the
node's published key, a second analysis holding a copied bundle); each test fails if the
node runs, talks or accepts anyway.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from pathlib import Path

import pytest

import flame_lab as fl
from flame_lab.errors import AnalysisFailed, TamperedResult
from flame_lab.federation import Analysis
from flame_lab.hubclient import every, with_client_credentials
from flame_lab.privacy import NodePolicy, dump_policy, load_policy
from flame_lab.records import SubmissionRecord
from flame_lab.sandbox import admin
from flame_lab.sandbox.node.agent import NodeAgent, PeerKeyError, Run
from flame_lab.sandbox.node.layout import NodeFolder
from flame_lab.sandbox.node.ledger import RunReplayed
from flame_lab.security import bundle as bundles
from flame_lab.security import keys

MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"
WAIT = 90


@pytest.fixture
def fed(in_sandbox):
    return fl.connect()


def _home(fed) -> Path:
    return fed.sandbox_home


def _draft() -> fl.Draft:
    return fl.Draft.from_files({"mean_age.py": MEAN_AGE.read_text()}, entrypoint="mean_age.py")


def _hub_as(fed, node: str):
    """Writes a hub could make about ``node`` (played with that node's client credentials)."""
    secrets = NodeFolder.of(_home(fed), node).read_secrets()
    return with_client_credentials(fed.endpoints, secrets["clientId"], secrets["clientSecret"])


def _wait_for(predicate, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class manual_policy:
    """The node's data steward sets approval = manual for the test's duration."""

    def __init__(self, fed, node: str) -> None:
        self.path = NodeFolder.of(_home(fed), node).policy

    def __enter__(self):
        self.old = load_policy(self.path)
        data = self.old.to_dict()
        data["approval"] = "manual"
        dump_policy(NodePolicy.from_dict(data, str(self.path)), self.path)

    def __exit__(self, *exc):
        dump_policy(self.old, self.path)


def _link(clients, analysis_id: str, node_id: str):
    return every(
        clients.core.find_analysis_nodes,
        filter={"analysis_id": analysis_id, "node_id": node_id},
    )[0]


def test_a_hub_that_reports_approval_cannot_make_a_manual_node_run(fed):
    with manual_policy(fed, "uk-koeln"):
        run = fed.submit(_draft(), name="hub forges approval")
        _wait_for(
            lambda: any("waiting for the node admin" in ln.message for ln in run.logs()),
            "uk-koeln to ask its admin",
        )
        hub = _hub_as(fed, "uk-koeln")
        koeln = next(i for i, n in run.record.nodes.items() if n == "uk-koeln")
        hub.core.update_analysis_node(_link(hub, run.id, koeln).id, approval_status="approved")
        # the researcher's client is not fooled: the node did not sign that approval
        shown = {n.name: n for n in run.status().nodes}["uk-koeln"]
        assert (shown.approval, shown.verified) == ("approved", False)
        assert shown.comment.startswith("(unverified)")
        assert run.status().overall == "pending"
        _drive_lifecycle(fed, run.id)  # the hub builds and distributes by itself
        with pytest.raises(AnalysisFailed, match=r"uk-koeln.*has not approved bundle"):
            run.wait(timeout=WAIT)
    ledger = NodeAgent(_home(fed), "uk-koeln", fed.hub_url.rsplit("/", 1)[0], keep_state=False)
    assert not ledger.ledger.ran(run.record.run_nonce)  # nothing ran at the manual node
    assert ledger.ledger.for_analysis(run.id).state == "pending"


def _drive_lifecycle(fed, analysis_id: str) -> None:
    """Build and distribute, as a hub that does not wait for the researcher could."""
    for command, done in (
        ("buildStart", "build_status"),
        ("distributionStart", "distribution_status"),
    ):
        fed.core.send_analysis_command(analysis_id, command)
        check = command.replace("Start", "Check")
        _wait_for(
            lambda c=check, d=done: (
                getattr(fed.core.send_analysis_command(analysis_id, c), d) == "executed"
            ),
            f"{command} to finish",
        )


def _code_tar(fed, analysis_id: str) -> dict[str, bytes]:
    bucket = fed._wait_for_bucket(analysis_id, "CODE")
    response = fed.clients.storage_http.get(f"buckets/{bucket.bucket_id}/stream")
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _replay_in_new_analysis(fed, original: Analysis, name: str) -> Analysis:
    """Another account (or the hub) wraps a signed bundle it saw in an analysis of its own."""
    signed = bundles.SignedBundle.from_bucket_files(_code_tar(fed, original.id))
    chosen = [n for n in fed.nodes() if n.id in original.record.nodes]
    created = fed.core.create_analysis(fed.project_id, name=name, master_image_id=None)
    record = SubmissionRecord(**{**original.record.to_dict(), "analysis_id": str(created.id)})
    fed.store.save(record)
    fed._configure(str(created.id), chosen, signed, original.record.entrypoint)
    return Analysis(fed, record)


def test_a_signed_bundle_replayed_in_another_analysis_is_refused(fed):
    first = fed.submit(_draft(), name="the researcher's own run")
    first.wait(timeout=WAIT)
    replay = _replay_in_new_analysis(fed, first, "replayed")
    with pytest.raises(AnalysisFailed, match=f"signed for analysis '{first.id}'"):
        replay.wait(timeout=WAIT)
    # every node refuses it, the aggregator too (which the hub approves by itself at creation)
    _wait_for(lambda: {n.approval for n in replay.status().nodes} == {"rejected"}, "every verdict")
    assert all(n.execution is None for n in replay.status().nodes)


def test_a_rejected_bundle_rewrapped_with_hub_approval_never_runs(fed):
    with manual_policy(fed, "uk-aachen"):
        run = fed.submit(_draft(), name="to be rejected")
        _wait_for(lambda: run.logs(node="uk-aachen"), "uk-aachen to review the code")
        admin.decide(run.id, "uk-aachen", approve=False, reason="no", home=_home(fed))
        with pytest.raises(AnalysisFailed, match="rejected at uk-aachen: no"):
            run.wait(timeout=WAIT)
        replay = _replay_in_new_analysis(fed, run, "rewrapped")
        hub = _hub_as(fed, "uk-aachen")
        aachen = next(i for i, n in run.record.nodes.items() if n == "uk-aachen")
        _wait_for(lambda: _link(hub, replay.id, aachen).approval_status, "uk-aachen's verdict")
        hub.core.update_analysis_node(_link(hub, replay.id, aachen).id, approval_status="approved")
        with pytest.raises(AnalysisFailed):
            replay.wait(timeout=WAIT)
    assert _link(hub, replay.id, aachen).execution_status != "executed"


def test_the_same_signed_run_does_not_run_twice_at_a_node(fed):
    run = fed.submit(_draft(), name="runs once")
    run.wait(timeout=WAIT)
    agent = NodeAgent(_home(fed), "uk-koeln", fed.hub_url.rsplit("/", 1)[0], keep_state=False)
    link = _link(agent.clients, run.id, agent.node_id)
    analysis = agent.core.get_analysis(run.id)
    with pytest.raises(RunReplayed, match="already ran at this node"):
        agent._run(link, analysis, Run(threading.Thread(target=lambda: None)))


def test_a_hub_serving_its_own_key_for_a_node_is_refused_naming_the_node(fed):
    hub = _hub_as(fed, "uk-koeln")
    koeln = next(n for n in fed.nodes() if n.name == "uk-koeln")
    genuine = hub.core.get_node(koeln.id).public_key
    mallory = keys.NodeIdentity.generate()
    hub.core.update_node(koeln.id, public_key=mallory.public.hub_public_key)
    try:
        run = fed.submit(_draft(), name="hub swaps a key")
        with pytest.raises(AnalysisFailed, match=r"key for node uk-koeln .* differs from the"):
            run.wait(timeout=WAIT)
    finally:
        hub.core.update_node(koeln.id, public_key=genuine)
    assert fed.submit(_draft(), name="keys back").wait(timeout=WAIT).overall == "executed"


def test_a_peer_without_a_pin_is_refused_naming_the_node(fed):
    agent = NodeAgent(_home(fed), "aggregator", fed.hub_url.rsplit("/", 1)[0], keep_state=False)
    koeln = next(n for n in fed.nodes() if n.name == "uk-koeln")
    agent.folder = NodeFolder(agent.folder.root.parent / "no-such-node")  # pins not readable
    with pytest.raises(PeerKeyError, match=r"node uk-koeln .* has no pinned identity"):
        agent.check_peers((agent.node_id, koeln.id))


THREE_RESULTS = (
    MEAN_AGE.read_text()
    .replace(
        'return {"mean_age": sum(r["sum"] for r in analysis_results) / n, "n": n}',
        'return [n, sum(r["sum"] for r in analysis_results) / n, "three"]',
    )
    .replace('output_type="pickle",', 'output_type="pickle",\n        multiple_results=True,')
)


def test_a_hub_that_drops_repeats_or_mixes_results_is_caught(fed):
    assert "multiple_results=True" in THREE_RESULTS
    draft = fl.Draft.from_files({"three.py": THREE_RESULTS}, entrypoint="three.py")
    run = fed.submit(draft, name="three results")
    run.wait(timeout=WAIT)
    served = run._fetch_result_files()
    assert len(served) == 3
    (a, b, c) = served
    other = fed.submit(draft, name="three more")
    other.wait(timeout=WAIT)

    def opened(files):
        handle = fed.attach(run.id)
        handle._fetch_result_files = lambda: files
        return handle.result()

    with pytest.raises(TamperedResult, match="missing 1; repeated 0"):
        opened([a, (b[0], a[1]), c])
    with pytest.raises(TamperedResult, match="missing 2"):
        opened([a, b])
    with pytest.raises(TamperedResult):  # another run's result in the set
        opened([a, b, other._fetch_result_files()[2]])
    first = opened([c, a, b])  # the hub's order does not matter, the signed sequence does
    assert isinstance(first[0], int) and first[0] > 0 and first[2] == "three"


BROKEN = Path(__file__).parents[1] / "analyses" / "broken.py"


def test_a_hub_cannot_show_a_failed_run_as_executed(fed):
    draft = fl.Draft.from_files({"broken.py": BROKEN.read_text()}, entrypoint="broken.py")
    run = fed.submit(draft, name="fails")
    with pytest.raises(AnalysisFailed):
        run.wait(timeout=WAIT)
    assert all(n.verified for n in run.status().nodes)  # the nodes' own reports verify
    for node_id, name in run.record.nodes.items():
        hub = _hub_as(fed, name)
        link = _link(hub, run.id, node_id)
        hub.core.update_analysis_node(
            link.id, execution_status="executed", execution_progress=100, comment=link.comment
        )
    status = run.status()
    assert {n.execution for n in status.nodes} == {"executed"}  # what the hub claims
    assert {n.verified for n in status.nodes} == {False}  # but no node said so
    assert status.overall != "executed"
    assert all(n.comment.startswith("(unverified) ") for n in status.nodes)


def test_invented_altered_or_repeated_log_lines_are_shown_as_unverified(fed):
    run = fed.submit(_draft(), name="logs")
    run.wait(timeout=WAIT)
    genuine = [ln for ln in run.logs(node="uk-koeln")]
    assert genuine and all(ln.verified for ln in genuine)
    hub = _hub_as(fed, "uk-koeln")
    koeln = next(i for i, n in run.record.nodes.items() if n == "uk-koeln")
    raw = every(hub.core.find_analysis_node_logs, filter={"analysis_id": run.id, "node_id": koeln})
    signed = raw[-1].message
    hub.core.create_analysis_node_log(run.id, koeln, "info", "uk-koeln: all rows exported")
    hub.core.create_analysis_node_log(run.id, koeln, "info", "uk-koeln: more" + signed[-120:])
    hub.core.create_analysis_node_log(run.id, koeln, "error", signed)  # another level
    hub.core.create_analysis_node_log(run.id, koeln, raw[-1].level, signed)  # a repeat
    after = run.logs(node="uk-koeln")
    forged = after[len(genuine) :]
    assert [ln.verified for ln in after[: len(genuine)]] == [True] * len(genuine)
    assert len(forged) == 4 and not any(ln.verified for ln in forged)
    assert all(ln.message.startswith("(unverified) ") for ln in forged)
    assert "[flame-lab-signed" not in "".join(ln.message for ln in after)


def test_the_admin_reviews_a_new_version_against_the_approved_one_then_rejects(fed, capsys):
    from flame_lab.cli import main

    home = str(_home(fed))
    with manual_policy(fed, "uk-koeln"):
        first = fed.submit(_draft(), name="cohort review")
        _wait_for(lambda: first.logs(node="uk-koeln"), "uk-koeln to review the code")
        assert main(["node", "approve", first.id, "--node", "uk-koeln", "--home", home]) == 0
        first.wait(timeout=WAIT)
        changed = (
            MEAN_AGE.read_text()
            .replace("import csv\n", "import csv\nimport socket\n")
            .replace("        rows = list(", "        print(data)\n        rows = list(")
        )
        draft = fl.Draft.from_files({"mean_age.py": changed}, entrypoint="mean_age.py")
        second = fed.submit(draft, name="cohort review")
        _wait_for(lambda: second.logs(node="uk-koeln"), "uk-koeln to review the code")
        capsys.readouterr()
        assert main(["node", "review", second.id, "--node", "uk-koeln", "--home", home]) == 0
        text = capsys.readouterr().out
        assert f"signer   {second.record.signer} (trusted by this node)" in text
        assert "verifies: yes" in text and "decision at this node: pending" in text
        assert f"bundle {first.record.bundle_hash[:16]}" in text  # the version approved before
        assert "+import socket" in text and "+        print(data)" in text
        assert "mean_age.py:4  [network] imports socket" in text
        assert "[prints-data] print() of a value computed from data" in text
        assert main(["node", "reject", second.id, "--node", "uk-koeln", "--reason", "no network",
                     "--home", home]) == 0  # fmt: skip
        with pytest.raises(AnalysisFailed, match="rejected at uk-koeln: no network"):
            second.wait(timeout=WAIT)
