"""The magics against a started sandbox federation: submit, wait, decrypt; follow; decide."""

from __future__ import annotations

import re

import pytest

from flame_lab import federation
from flame_lab.errors import AnalysisFailed, NotFound
from tests.kernel.conftest import (
    HELPERS_CELL,
    MANUAL_NODE,
    MEAN_AGE_CELL,
    PASSPHRASE,
    magics_of,
    run,
)


@pytest.fixture
def fed_shell(shell, sandbox, monkeypatch):
    """The shell, with this researcher's home and passphrase pointing at the sandbox."""
    monkeypatch.setenv("FLAME_LAB_HOME", str(sandbox))
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", PASSPHRASE)
    assert run(shell, "%%flame file helpers.py\n" + HELPERS_CELL).error is None
    assert run(shell, "%%flame\n" + MEAN_AGE_CELL).error is None
    return shell


def submit(shell, args: str) -> str:
    ran = run(shell, f"%flame submit {args}")
    assert ran.error is None, ran.stdout
    return shell.user_ns["_flame"].id


def test_submit_wait_and_result_give_what_the_local_test_predicted(fed_shell):
    local = run(fed_shell, "%flame test --nodes 1")
    assert local.error is None, local.stdout
    expected = fed_shell.user_ns["_flame_test"].result

    ran = run(fed_shell, "%flame submit --nodes uk-aachen,aggregator --name 'mean age' --wait")
    assert ran.error is None, ran.stdout
    analysis = fed_shell.user_ns["_flame"]
    states = re.findall(rf"\] {analysis.id} (\w+) ", ran.stdout)
    assert states[-1] == "executed" and states[0] in ("pending", "approved", "running")
    assert f"mean age ({analysis.id}) on sandbox: EXECUTED 100%" in ran.stdout
    submitted = [o.metadata["flame_lab"]["submission"] for o in ran.outputs if o.metadata]
    assert submitted[0]["analysisId"] == analysis.id
    assert submitted[0]["bundleHash"] == analysis.record.bundle_hash
    assert submitted[0]["nodes"] == ["aggregator", "uk-aachen"]
    assert submitted[0]["hubUrl"] == analysis.federation.hub_url

    opened = run(fed_shell, f"%flame result {analysis.id}")
    assert opened.error is None, opened.stdout
    assert opened.result.result == pytest.approx(expected)
    var = "result_" + analysis.id[:8].replace("-", "_")
    assert fed_shell.user_ns[var] == opened.result.result
    record = fed_shell.user_ns["_flame"].federation.store.load(analysis.id)
    provenance = [o.metadata["flame_lab"]["result"] for o in opened.outputs if o.metadata]
    assert provenance[0]["resultHashes"] == record.result_hashes and record.result_hashes
    assert PASSPHRASE not in ran.stdout + opened.stdout


def test_nodes_status_logs_and_watch_follow_a_finished_analysis(fed_shell):
    analysis_id = submit(fed_shell, "--nodes uk-aachen,aggregator --wait")
    nodes = run(fed_shell, "%flame nodes").stdout
    assert re.search(r"uk-aachen\s+default", nodes) and re.search(r"aggregator\s+aggregator", nodes)
    table = run(fed_shell, "%flame status").stdout
    assert re.search(rf"{analysis_id}\s+analysis .*executed", table)
    one = run(fed_shell, f"%flame status {analysis_id}").stdout
    assert "EXECUTED 100%" in one and "uk-aachen" in one
    logs = run(fed_shell, f"%flame logs {analysis_id} --node uk-aachen --level info").stdout
    assert "[uk-aachen] info:" in logs and "[aggregator]" not in logs and " debug:" not in logs
    watched = run(fed_shell, f"%flame watch {analysis_id}").stdout
    assert "EXECUTED 100%" in watched and f"result ready: %flame result {analysis_id}" in watched


def test_after_a_kernel_restart_watch_shows_what_happened_meanwhile(fed_shell, shell):
    analysis_id = submit(fed_shell, "--nodes uk-aachen,aggregator")
    # A "restart": a new magics instance, nothing cached in this process, the run goes on.
    federation._identities.clear()
    run(shell, "%reload_ext flame_lab.kernel.magics")
    assert magics_of(shell).session.federation is None
    ran = run(shell, f"%flame watch {analysis_id} --wait")
    assert ran.error is None, ran.stdout
    assert "EXECUTED 100%" in ran.stdout
    assert "aggregator: sealed 1 result file(s)" in run(shell, f"%flame logs {analysis_id}").stdout


def test_approve_as_the_sandbox_nodes_admin_lets_the_analysis_run(fed_shell):
    analysis_id = submit(fed_shell, f"--nodes {MANUAL_NODE},aggregator")
    assert "PENDING" in run(fed_shell, f"%flame status {analysis_id}").stdout
    ran = run(fed_shell, f"%flame approve {analysis_id} --node {MANUAL_NODE}")
    assert ran.stdout == f"{MANUAL_NODE} approved analysis {analysis_id}.\n"
    assert run(fed_shell, f"%flame watch {analysis_id} --wait").error is None


def test_reject_shows_the_admins_reason_at_the_node_and_fails_the_wait(fed_shell):
    analysis_id = submit(fed_shell, f"--nodes {MANUAL_NODE},aggregator")
    reason = "not <b>today</b>"
    decided = run(
        fed_shell, f"%flame reject {analysis_id} --node {MANUAL_NODE} --reason '{reason}'"
    )
    assert decided.error is None, decided.stdout
    ran = run(fed_shell, f"%flame watch {analysis_id} --wait")
    assert isinstance(ran.error, AnalysisFailed)
    assert "REJECTED" in ran.stdout and f"FAILED: {reason}" in ran.stdout
    assert f"AnalysisFailed: analysis {analysis_id} rejected at {MANUAL_NODE}" in ran.stdout
    again = run(fed_shell, f"%flame approve {analysis_id} --node {MANUAL_NODE}")
    assert f"{MANUAL_NODE} already rejected" in again.stdout and "Hint:" in again.stdout


def test_cancel_stops_an_analysis_that_waits_for_approval(fed_shell):
    analysis_id = submit(fed_shell, f"--nodes {MANUAL_NODE},aggregator")
    assert run(fed_shell, f"%flame cancel {analysis_id}").stdout == (
        f"Cancelled analysis {analysis_id}.\n"
    )
    assert "CANCELLED" in run(fed_shell, f"%flame status {analysis_id}").stdout


def test_unknown_ids_and_nodes_are_short_errors_with_hints(fed_shell):
    ran = run(fed_shell, "%flame result no-such-analysis")
    assert isinstance(ran.error, NotFound)
    assert "NotFound: no analysis of yours on this hub has an id starting with" in ran.stdout
    assert "Hint: `%flame status` (or `flame-lab status`) lists your analyses." in ran.stdout
    bad = run(fed_shell, "%flame submit --nodes atlantis")
    assert "Traceback" not in bad.stdout and "Hint:" in bad.stdout
    assert "Traceback" not in ran.stdout


def test_connect_names_the_federation_and_its_nodes(fed_shell):
    ran = run(fed_shell, "%flame connect sandbox")
    pattern = r"Connected to federation 'sandbox' at http://127\.0\.0\.1:\d+/core: 4 node\(s\)\."
    assert re.match(pattern, ran.stdout)


def test_flame_data_shows_the_data_dictionary(shell, sandbox, monkeypatch):
    monkeypatch.setenv("FLAME_LAB_HOME", str(sandbox))
    ran = run(shell, "%flame data uk-aachen")
    assert ran.error is None, ran.stdout
    shown = "".join(str(o.data) for o in ran.outputs)
    assert "patients.csv" in shown and "ICD-10-GM" in shown and "uk-koeln" not in shown


def test_ids_by_prefix_results_as_frames_and_a_readable_status(fed_shell):
    analysis_id = submit(fed_shell, "--nodes uk-aachen,aggregator --wait")
    prefix = analysis_id[:8]
    opened = run(fed_shell, f"%flame result {prefix} --frame")
    assert opened.error is None, opened.stdout
    frame = opened.result.result
    assert list(frame.columns) == ["value"] and len(frame) == 1
    status = fed_shell.user_ns["_flame"].status()
    assert repr(status).startswith(f"{status.name} ({analysis_id}): executed 100%")
    assert "uk-aachen" in repr(status) and "<table>" in status._repr_html_()
    missing = run(fed_shell, "%flame status zzzz")
    assert isinstance(missing.error, NotFound) and "starting with 'zzzz'" in missing.error.message


def test_a_result_asked_for_too_early_says_so_and_how_to_wait(fed_shell):
    from flame_lab.errors import ResultNotReady

    analysis_id = submit(fed_shell, f"--nodes {MANUAL_NODE},aggregator")
    early = run(fed_shell, f"%flame result {analysis_id}")
    assert isinstance(early.error, ResultNotReady)
    assert f"%flame watch {analysis_id} --wait" in early.error.hint
    assert run(fed_shell, f"%flame cancel {analysis_id}").error is None
    status = fed_shell.user_ns["_flame"].status()  # the older handle learns of the cancel
    assert status.overall == "cancelled"


def test_the_kernel_reconnects_by_itself_to_a_sandbox_that_restarted_on_a_new_port(
    shell, tmp_path, monkeypatch
):
    """The old port is held across a restart by a listener that hangs up on every caller: the
    hub must move, and the next %flame call finds it again without `%flame connect`."""
    import contextlib
    import socket
    import threading

    from flame_lab import config
    from flame_lab.sandbox import daemon
    from flame_lab.security.keys import Identity, save_identity

    home = tmp_path / "flame-home"
    monkeypatch.setenv("FLAME_LAB_HOME", str(home))
    for var in ("FLAME_LAB_SANDBOX_DIR", "FLAME_LAB_KEYS_DIR", "FLAME_LAB_IDENTITY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", PASSPHRASE)
    save_identity(config.identity_file(), Identity.generate(), PASSPHRASE)
    sandbox_dir = config.sandbox_dir()
    daemon.initialise(sandbox_dir, nodes=2)
    daemon.up(sandbox_dir)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the hub's TIME_WAIT

    def hang_up() -> None:
        while True:
            try:
                caller, _ = holder.accept()
            except OSError:
                return  # the holder closed
            caller.close()

    try:
        ran = run(shell, "%flame connect")
        assert ran.error is None, ran.stdout
        old_url = magics_of(shell).session.federation.hub_url
        old_port = daemon.remembered_port(sandbox_dir)
        assert f":{old_port}/" in old_url

        daemon.down(sandbox_dir)
        holder.bind(("127.0.0.1", old_port))
        holder.listen(8)  # the hub cannot take the port; callers there are hung up on
        threading.Thread(target=hang_up, daemon=True).start()
        daemon.up(sandbox_dir)
        new_port = daemon.remembered_port(sandbox_dir)
        assert new_port != old_port

        ran = run(shell, "%flame nodes")
        assert ran.error is None, ran.stdout
        new_url = magics_of(shell).session.federation.hub_url
        assert f":{new_port}/" in new_url
        assert f"(The sandbox moved: reconnected to {new_url}.)" in ran.stdout
        assert "uk-aachen" in ran.stdout and "ConnectError" not in ran.stdout
    finally:
        with contextlib.suppress(OSError):  # wakes the accept; unbound if the test failed early
            holder.shutdown(socket.SHUT_RDWR)
        holder.close()
        daemon.down(sandbox_dir)
