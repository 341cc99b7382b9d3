"""Submitting is transactional from the researcher's side: a local note comes before anything
at the hub, and a submitting process killed at any step leaves nothing pending: on the next
look its analysis is resumed (same signed bundle) or removed at the hub, saying why.

The researcher's process is really killed (SIGKILL, from inside, at a chosen step), in a
child interpreter against the suite's sandbox.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flame_lab as fl
from flame_lab.errors import RecordError
from flame_lab.hubclient import every
from flame_lab.records import INTENT_PREFIX, SubmissionStore

MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"
WAIT = 180.0

# the child submits the example and kills itself (SIGKILL: no cleanup runs) at one step
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import flame_lab as fl
    from flame_lab import federation, records

    step = sys.argv[1]
    def die(*_a, **_k):
        os.kill(os.getpid(), signal.SIGKILL)

    if step == "before-record":
        records.SubmissionStore.save_bundle = die
    elif step == "before-lock":
        original = federation.Federation._configure
        def configure(self, analysis_id, chosen, signed, entry):
            real = self.core.send_analysis_command
            def command(aid, name, *a, **k):
                if name == "configurationLock":
                    die()
                return real(aid, name, *a, **k)
            self.core.send_analysis_command = command
            return original(self, analysis_id, chosen, signed, entry)
        federation.Federation._configure = configure
    source = Path(sys.argv[2]).read_text()
    fed = fl.connect()
    fed.submit(fl.Draft.from_files({"mean_age.py": source}, entrypoint="mean_age.py"))
    """
)


@pytest.fixture
def flame_home(sandbox_home, in_sandbox):
    """These tests share the suite's one running sandbox (tests/conftest.py)."""
    return sandbox_home


def killed_submit(step: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, step, str(MEAN_AGE)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=os.environ.copy(),
    )
    assert done.returncode == -9, done.stderr  # killed where we said, not failed elsewhere


def hub_analysis_ids(fed: fl.Federation) -> set[str]:
    return {str(a.id) for a in every(fed.core.find_analyses)}


def test_a_submit_killed_before_its_record_leaves_no_analysis_at_the_hub(flame_home) -> None:
    fed = fl.connect()
    before = hub_analysis_ids(fed)
    killed_submit("before-record")
    orphans = hub_analysis_ids(fed) - before
    assert len(orphans) == 1  # created at the hub; the local note knows about it
    assert len(fed.store.intents()) == 1
    known = {a.id for a in fed.analyses()}  # the next look
    assert hub_analysis_ids(fed) - before == set()  # removed at the hub
    assert fed.store.intents() == [] and not orphans & known


def test_a_submit_killed_before_the_lock_is_resumed_and_runs(flame_home) -> None:
    fed = fl.connect()
    known = {r.analysis_id for r in fed.store.all()}
    killed_submit("before-lock")
    (record,) = [r for r in fed.store.all() if r.analysis_id not in known]
    assert record.pending and fed.store.load_bundle(record.analysis_id) is not None
    listed = {a.id: a for a in fed.analyses()}  # the next look resumes it
    run = listed[record.analysis_id]
    assert not fed.store.load(run.id).pending and fed.store.load_bundle(run.id) is None
    assert run.wait(timeout=WAIT).overall == "executed"
    assert run.result()["n"] > 0  # sealed to the same key, under the same signed bundle


def test_a_pending_record_without_its_bundle_is_removed_saying_why(flame_home) -> None:
    fed = fl.connect()
    known = {r.analysis_id for r in fed.store.all()}
    killed_submit("before-lock")
    (record,) = [r for r in fed.store.all() if r.analysis_id not in known]
    fed.store.drop_bundle(record.analysis_id)
    message = fed.resume(record.analysis_id)
    assert "was not kept" in message
    again = fed.store.load(record.analysis_id)
    assert not again.pending and again.cancelled_at and "not kept" in again.interrupted
    assert record.analysis_id not in hub_analysis_ids(fed)


def test_an_unwritable_records_folder_refuses_before_the_hub_creates_anything(
    flame_home, tmp_path, monkeypatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FLAME_LAB_DATA_DIR", str(blocker / "data"))
    fed = fl.connect()
    before = hub_analysis_ids(fed)
    draft = fl.Draft.from_files({"mean_age.py": MEAN_AGE.read_text()}, entrypoint="mean_age.py")
    with pytest.raises(RecordError, match="nothing was sent to the hub"):
        fed.submit(draft)
    assert hub_analysis_ids(fed) == before


def test_a_damaged_record_is_listed_as_damaged(flame_home, capsys) -> None:
    from flame_lab.cli import main

    store = SubmissionStore()
    store.folder.mkdir(parents=True, exist_ok=True)
    (store.folder / "broken-record.json").write_bytes(b'{"analysis_id": "x", ')
    try:
        assert [p.name for p, _ in store.damaged()] == ["broken-record.json"]
        assert main(["status"]) == 0
        out = capsys.readouterr().out
        assert "damaged record" in out and "broken-record.json" in out
        assert "JSON breaks at line 1" in out
    finally:
        (store.folder / "broken-record.json").unlink()


def test_records_on_a_full_disk_fail_in_one_line_and_leave_no_temporary_file(tmp_path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    try:
        (full / "submissions").mkdir()
        fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError) as caught:
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        assert caught.value.errno == errno.ENOSPC
        store = SubmissionStore(full / "submissions")
        with pytest.raises(RecordError) as refused:
            store.begin("hub", "name")
        assert "No space left on device" in refused.value.message
        assert "\n" not in refused.value.message
        assert [p.name for p in store.folder.iterdir()] == []  # no note, no temporary file
        assert not [p for p in store.folder.glob(f"{INTENT_PREFIX}*")]
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)
