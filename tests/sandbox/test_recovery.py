"""Fault tests: the sandbox's processes are killed (SIGKILL), stalled (SIGSTOP) and restarted
with the documented command (`flame-lab sandbox up`); every analysis still ends, with a reason.

Each test has its own small sandbox (one data node and the aggregator). Nothing here waits for
a duration to pass: each step waits for an event (a log line, a state file, a status).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import flame_lab as fl
from flame_lab.errors import AnalysisFailed
from flame_lab.sandbox import daemon
from flame_lab.sandbox.node.layout import NodeFolder
from flame_lab.security import keys
from tests.sandbox.test_daemon import cli

ANALYSES = Path(__file__).parents[1] / "analyses"
MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"
PASSPHRASE = "recovery test passphrase"
PATIENCE = 120.0  # how long a step may take on a loaded machine before the test gives up


def wait_for(predicate: Callable[[], Any], what: str, limit: float = PATIENCE) -> Any:
    """Poll ``predicate`` until it is truthy; the limit only guards against a hang."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private researcher home with a key and a two-node sandbox (started by each test, so
    that it can choose the agents' environment first)."""
    home = tmp_path / "lab"
    keys.save_identity(home / "keys" / "identity.json", keys.Identity.generate(), PASSPHRASE)
    monkeypatch.setenv("FLAME_LAB_HOME", str(home))
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", PASSPHRASE)
    yield home
    daemon.down(home / "sandbox")


def draft(name: str, **replace: str) -> fl.Draft:
    text = (MEAN_AGE if name == MEAN_AGE.name else ANALYSES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return fl.Draft.from_files({name: text}, entrypoint=name)


def hub_pid(home: Path) -> int:
    return int((home / "sandbox" / daemon.PID_FILE).read_text())


def folder(home: Path, node: str) -> NodeFolder:
    return NodeFolder.of(home / "sandbox", node)


def agent_state(home: Path, node: str, analysis_id: str) -> dict[str, Any]:
    return json.loads(folder(home, node).state.read_text()).get(analysis_id, {})


def log_has(home: Path, node: str, text: str) -> bool:
    log = folder(home, node).log
    return log.exists() and text in log.read_text(errors="replace")


def running_on(node: str, run: fl.Analysis) -> bool:
    """The analysis runs at ``node`` (status() also does the researcher's steps: build...)."""
    return run.status().overall == "running" and any(
        ln.message == "waiting" for ln in run.logs(node=node)
    )


def test_up_after_a_hub_crash_keeps_its_url_and_every_agent(lab: Path, capsys) -> None:
    home = lab / "sandbox"
    first = daemon.up(home, nodes=2)
    agents = {n["name"]: n["agentPid"] for n in daemon.status(home)["nodes"]}
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: not daemon.status(home)["running"], "the hub to be gone")
    assert cli("up", "--home", str(home)) == 0
    assert capsys.readouterr().out.strip() == first.url  # the same port: nobody reconnects
    info = daemon.status(home)
    assert info["pid"] != first.pid and info["port"] == int(first.url.rsplit(":", 1)[1])
    assert {n["name"]: n["agentPid"] for n in info["nodes"]} == agents
    assert all(n["agentAttached"] for n in info["nodes"])
    run = fl.connect().submit(draft(MEAN_AGE.name))
    assert run.wait(timeout=PATIENCE).overall == "executed"


def test_up_when_the_port_was_taken_repoints_every_agent(lab: Path, capsys) -> None:
    home = lab / "sandbox"
    first = daemon.up(home, nodes=2)
    old_port = int(first.url.rsplit(":", 1)[1])
    before = {n["name"]: n["agentPid"] for n in daemon.status(home)["nodes"]}
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: daemon.port_free(old_port), "the old port to be free")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server would
    try:
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        # the agents still talk to the dead address: status must not call them fine
        assert cli("status", "--home", str(home)) == 3
        capsys.readouterr()
        second = daemon.up(home)
        assert second.url != first.url
        info = daemon.status(home)
        assert info["port"] != old_port
        for node in info["nodes"]:
            assert node["agentAttached"] and node["agentUrl"] == second.url
            assert node["agentPid"] != before[node["name"]]
        assert cli("status", "--home", str(home)) == 0
        assert "DETACHED" not in capsys.readouterr().out
        run = fl.connect().submit(draft(MEAN_AGE.name))
        assert run.wait(timeout=PATIENCE).overall == "executed"
    finally:
        squatter.close()


def test_status_names_an_agent_that_talks_to_another_hub(lab: Path, capsys) -> None:
    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    stray = folder(lab, "aggregator")
    old_pid = daemon.agent_pid(stray)
    stray.hub_url.write_text("http://127.0.0.1:9")  # as if started for a hub that moved
    assert cli("status", "--home", str(home)) == 3
    assert "agent DETACHED (talks to http://127.0.0.1:9)" in capsys.readouterr().out
    daemon.up(home)  # re-points it: a fresh agent on the hub's URL
    assert daemon.agent_pid(stray) != old_pid
    assert daemon.agent_url(stray) == daemon.status(home)["url"]


def test_a_run_that_failed_while_the_hub_was_down_is_reported_once_it_is_back(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAME_LAB_HUB_OUTAGE", "1")  # the agents give up on the hub at once
    home = lab / "sandbox"
    first = daemon.up(home, nodes=2)
    run = fl.connect().submit(draft("slow.py"))
    wait_for(lambda: running_on("uk-aachen", run), "uk-aachen to run the analysis")
    os.kill(first.pid, signal.SIGKILL)
    # the aggregator was waiting for uk-aachen's message: it fails, and cannot tell the hub
    failed = wait_for(
        lambda: (
            agent_state(lab, "aggregator", run.id).get("phase") == "failed"
            and agent_state(lab, "aggregator", run.id)
        ),
        "the aggregator to give up on the hub",
    )
    assert failed["reported"] is False
    assert "FLAME_LAB_HUB_OUTAGE=1 s" in failed["reason"]
    assert "receive messages from other nodes" in failed["reason"]
    daemon.up(home)
    with pytest.raises(AnalysisFailed, match="aggregator") as caught:
        run.wait(timeout=PATIENCE)
    assert "unreachable" in str(caught.value)
    wait_for(lambda: agent_state(lab, "aggregator", run.id).get("reported"), "the late report")
    # the data node's run was stopped too, and the federation works again
    wait_for(
        lambda: agent_state(lab, "uk-aachen", run.id).get("phase") == "failed",
        "uk-aachen to stop its run",
    )
    again = fl.connect().submit(draft(MEAN_AGE.name))
    assert again.wait(timeout=PATIENCE).overall == "executed"


def test_a_hub_stalled_past_the_read_timeout_does_not_end_the_run(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAME_LAB_HUB_TIMEOUT", "2")  # a stall outlasts a request at once
    home = lab / "sandbox"
    first = daemon.up(home, nodes=2)
    # 100, not slow.py's 1: a count below the node's min_records would be suppressed
    quick = {"time.sleep(120)": "time.sleep(3)", "return 1": "return 100"}
    run = fl.connect().submit(draft("slow.py", **quick))
    wait_for(lambda: running_on("uk-aachen", run), "uk-aachen to run the analysis")
    os.kill(first.pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: log_has(lab, "aggregator", "did not answer within FLAME_LAB_HUB_TIMEOUT=2 s"),
            "the aggregator's request to time out",
        )
    finally:
        os.kill(first.pid, signal.SIGCONT)
    status = run.wait(timeout=PATIENCE)
    assert status.overall == "executed"
    assert run.result() == 100


def test_a_restarted_agent_fails_the_run_it_lost_naming_itself(lab: Path) -> None:
    home = lab / "sandbox"
    daemon.up(home, nodes=2)
    run = fl.connect().submit(draft("slow.py"))
    wait_for(lambda: running_on("uk-aachen", run), "uk-aachen to run the analysis")
    agent = folder(lab, "uk-aachen")
    os.kill(int(agent.pid.read_text()), signal.SIGKILL)
    daemon.up(home)  # the documented recovery: restarts the missing agent
    with pytest.raises(AnalysisFailed, match="uk-aachen"):
        run.wait(timeout=PATIENCE)
    again = fl.connect().submit(draft(MEAN_AGE.name))
    assert again.wait(timeout=PATIENCE).overall == "executed"


def test_a_hub_killed_while_an_analysis_waits_for_approval_loses_nothing(lab: Path) -> None:
    from flame_lab.privacy import dump_policy, load_policy
    from flame_lab.sandbox.admin import decide

    home = lab / "sandbox"
    first = daemon.up(home, nodes=2)
    policy = folder(lab, "uk-aachen").policy
    dump_policy(replace(load_policy(policy), approval="manual"), policy)
    run = fl.connect().submit(draft(MEAN_AGE.name))
    wait_for(
        lambda: any("waiting for the node admin" in ln.message for ln in run.logs()),
        "uk-aachen to ask its admin",
    )
    assert run.status().waiting[0].startswith("waiting for uk-aachen to approve")
    os.kill(first.pid, signal.SIGKILL)
    daemon.up(home)
    assert run.status().overall == "pending"  # kept, and still explained
    assert run.status().waiting[0].startswith("waiting for uk-aachen to approve")
    decide(run.id, "uk-aachen", approve=True, home=home)
    assert run.wait(timeout=PATIENCE).overall == "executed"
    assert run.result()["n"] > 0
