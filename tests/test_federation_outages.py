"""submit, logs, result, status and cancel ride out a hub outage under FLAME_LAB_HUB_OUTAGE,
retrying only what is safe to repeat: a create whose answer was lost is found again by the
submission's token, never made twice. Past the limit the error names the step, how long the
hub was away and the limit, and what to do. A fake hub and a hand-moved clock: no waiting."""

from __future__ import annotations

from pathlib import Path

import pytest

import flame_lab as fl
from flame_lab.hubclient import HUB_OUTAGE_VAR, HubOutage
from flame_lab.records import INTENT_PREFIX
from flame_lab.security.keys import Identity
from tests.fakehub import federation

MEAN_AGE = (Path(fl.__file__).parent / "examples" / "mean_age.py").read_text()


@pytest.fixture
def draft():
    return fl.Draft.from_files({"mean_age.py": MEAN_AGE}, entrypoint="mean_age.py")


@pytest.fixture(scope="module")
def identity():
    return Identity.generate()


def _tagged(core):
    return [a for a in core.analyses.values() if "flame_lab submission" in a.description]


def test_a_lost_answer_to_create_does_not_create_a_second_analysis(tmp_path, draft, identity):
    fed, core = federation(tmp_path)
    core.faults["create_analysis"] = ["lost"]  # the hub created it; the answer never came
    run = fed.submit(draft, identity=identity)
    assert list(core.analyses) == [run.id]
    assert core.calls.count("create_analysis") == 1  # found by its token, not created again
    assert not fed.store.load(run.id).pending
    assert core.analyses[run.id].configuration_locked


def test_a_stalled_create_that_lands_late_leaves_exactly_one_analysis(tmp_path, draft, identity):
    fed, core = federation(tmp_path)
    # the first try times out and the hub carries it out only after the retry: two exist briefly
    core.faults["create_analysis"] = ["stalled"]
    run = fed.submit(draft, identity=identity)
    assert core.calls.count("create_analysis") == 2
    assert list(core.analyses) == [run.id]
    assert [link.analysis_id for link in core.links] == [run.id] * 3


def test_a_hub_down_for_the_whole_limit_creates_nothing_and_says_so(
    tmp_path, draft, identity, monkeypatch
):
    monkeypatch.setenv(HUB_OUTAGE_VAR, "60")
    fed, core = federation(tmp_path)
    core.faults["create_analysis"] = ["down"] * 1000
    with pytest.raises(HubOutage) as raised:
        fed.submit(draft, identity=identity)
    message = raised.value.message
    assert "submit: create the analysis" in message
    assert f"limit {HUB_OUTAGE_VAR}=60 s" in message
    waited = round(raised.value.waited)
    assert 50 <= waited <= 60 and f"unreachable for {waited} s" in message
    assert "submit again" in (raised.value.hint or "")
    assert core.analyses == {} and fed.store.all() == []
    assert sum(fed.clock.slept) <= 60  # backed off within the limit, never past it
    assert max(fed.clock.slept) == 5.0 and fed.clock.slept[0] == 0.25


def test_an_outage_after_a_lost_create_leaves_the_note_for_the_next_look(
    tmp_path, draft, identity, monkeypatch
):
    monkeypatch.setenv(HUB_OUTAGE_VAR, "30")
    fed, core = federation(tmp_path)
    core.faults["create_analysis"] = ["lost"]
    core.faults["find_analyses"] = ["down"] * 1000  # the search for it never answers
    with pytest.raises(HubOutage):
        fed.submit(draft, identity=identity)
    assert len(core.analyses) == 1  # created, unknown to the researcher
    (note,) = fed.store.folder.glob(f"{INTENT_PREFIX}*.json")
    core.faults.clear()
    fed.analyses()  # the next look: the note is no longer this process's, so it cleans up
    assert core.analyses == {} and not note.exists()


def test_an_outage_during_upload_keeps_it_pending_and_resume_finishes_it(
    tmp_path, draft, identity, monkeypatch
):
    monkeypatch.setenv(HUB_OUTAGE_VAR, "20")
    fed, core = federation(tmp_path)
    core.faults["upload_to_bucket"] = ["down"] * 1000
    with pytest.raises(HubOutage) as raised:
        fed.submit(draft, identity=identity)
    (analysis_id,) = core.analyses
    message, hint = raised.value.message, raised.value.hint or ""
    assert f"submit analysis {analysis_id}: upload and lock its code" in message
    assert f"limit {HUB_OUTAGE_VAR}=20 s" in message and "unreachable for" in message
    assert f"fed.resume('{analysis_id}')" in hint and "%flame status" in hint
    record = fed.store.load(analysis_id)
    assert record.pending and record.writer == ""  # the next look may finish it
    core.faults.clear()
    fed.analyses()
    assert not fed.store.load(analysis_id).pending
    assert core.analyses[analysis_id].configuration_locked


def test_lost_answers_while_configuring_repeat_nothing(tmp_path, draft, identity):
    fed, core = federation(tmp_path)
    core.faults["create_analysis_node"] = ["lost"]
    core.faults["upload_to_bucket"] = ["lost"]
    core.faults["send_analysis_command"] = ["lost"]  # locked, answer lost: not locked twice
    run = fed.submit(draft, identity=identity)
    analysis = core.analyses[run.id]
    assert analysis.configuration_locked and analysis.locks == 1
    assert sorted(link.node_id for link in core.links) == sorted(n.id for n in core.nodes)
    entries = [f for f in core.bucket_files if f.path == "mean_age.py"]
    assert len(entries) == 1 and entries[0].root


def test_a_refusal_is_not_retried(tmp_path, draft, identity):
    from flame_lab.errors import HubError

    fed, core = federation(tmp_path)
    real = core.create_analysis

    def refuse(*a, **k):
        core.calls.append("create_analysis")
        from tests.fakehub import _refused

        raise _refused("name too long")

    core.create_analysis = refuse  # type: ignore[method-assign]
    with pytest.raises(HubError, match="name too long"):
        fed.submit(draft, identity=identity)
    assert core.calls.count("create_analysis") == 1 and fed.clock.slept == []
    core.create_analysis = real  # type: ignore[method-assign]


@pytest.fixture
def submitted(tmp_path, draft, identity):
    fed, core = federation(tmp_path)
    return fed, core, fed.submit(draft, identity=identity)


def test_logs_result_and_status_wait_for_a_hub_that_comes_back(submitted):
    fed, core, run = submitted
    core.faults["find_analysis_node_logs"] = ["down", "down", "lost"]
    assert run.logs() == []
    assert fed.clock.slept == [0.25, 0.5, 1.0]
    core.faults["get_analysis"] = ["down"] * 3
    with pytest.raises(fl.errors.ResultNotReady):  # the status was read after the outage
        run.result()


def test_logs_past_the_limit_name_the_step_and_the_limit(submitted, monkeypatch):
    _fed, core, run = submitted
    monkeypatch.setenv(HUB_OUTAGE_VAR, "45")
    core.down = True
    with pytest.raises(HubOutage) as raised:
        run.logs()
    assert f"read the logs of analysis {run.id}" in raised.value.message
    assert f"{HUB_OUTAGE_VAR}=45 s" in raised.value.message
    with pytest.raises(HubOutage, match=f"read the state of analysis {run.id}"):
        run.result()


def test_cancel_whose_answer_was_lost_is_done_once(submitted):
    fed, core, run = submitted
    core.faults["delete_analysis"] = ["lost"]
    run.cancel()
    assert run.id not in core.analyses
    assert fed.store.load(run.id).cancelled_at is not None
    assert run.status().overall == "cancelled"


def test_cancel_past_the_limit_changes_nothing_here(submitted, monkeypatch):
    fed, core, run = submitted
    monkeypatch.setenv(HUB_OUTAGE_VAR, "10")
    core.down = True
    with pytest.raises(HubOutage, match=f"cancel analysis {run.id}") as raised:
        run.cancel()
    assert "cancel again" in (raised.value.hint or "")
    assert fed.store.load(run.id).cancelled_at is None


def test_a_look_that_is_repeated_anyway_fails_at_once(submitted):
    fed, core, run = submitted
    core.down = True
    with pytest.raises(fl.errors.HubUnreachable) as raised:
        run.logs(patient=False)  # the monitor's look: it looks again on its own
    assert not isinstance(raised.value, HubOutage) and fed.clock.slept == []
    with pytest.raises(fl.errors.HubUnreachable):
        run.status()  # one look; wait() is what rides outages out
    assert fed.clock.slept == []
