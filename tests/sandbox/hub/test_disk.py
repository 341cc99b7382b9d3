"""The hub's disk: code stored once (builds are manifests over content-addressed blobs), what
deleted analyses held is reclaimed, and a full disk is a 507 naming it, with nothing half-written.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flame_hub import HubAPIError

from flame_lab.errors import HubStorageFull
from flame_lab.hubclient import hub_errors
from flame_lab.sandbox.hub.app import HubThread
from flame_lab.sandbox.hub.gc import OUT_OF_PROCESS_GRACE, collect, live_hashes
from flame_lab.sandbox.hub.store import Store
from tests.sandbox.hub.conftest import (
    Sandbox,
    approve_all,
    build,
    code_bucket_id,
    provisioned_home,
    ready_analysis,
    researcher_clients,
)


def blobs(store: Store) -> set[str]:
    return {p.name for p in store.blobs.glob("*/*") if p.is_file()}


def test_a_build_keeps_the_code_once_however_often_it_is_built(sandbox: Sandbox) -> None:
    store = sandbox.hub.store
    first = ready_analysis(sandbox, "built-once")
    before = blobs(store)
    approve_all(sandbox, first.id)
    built = build(sandbox, first.id)
    second = ready_analysis(sandbox, "built-twice")  # the same two files
    approve_all(sandbox, second.id)
    again = build(sandbox, second.id)
    assert built.build_hash == again.build_hash
    assert blobs(store) == before  # no copy per build, nor per analysis
    assert [p for p in store.builds.iterdir()] == []
    bucket = code_bucket_id(sandbox, str(second.id))
    import io
    import tarfile

    tar = tarfile.open(fileobj=io.BytesIO(b"".join(sandbox.storage.stream_bucket_tarball(bucket))))
    assert {m.name: tar.extractfile(m).read() for m in tar.getmembers()} == {
        "lib/helpers.py": b"X = 1\n",
        "main.py": b"print('hello')\n",
    }


def test_deleting_an_analysis_reclaims_what_only_it_held(sandbox: Sandbox) -> None:
    store = sandbox.hub.store
    shared = ready_analysis(sandbox, "keeps-shared-code")
    doomed = ready_analysis(sandbox, "doomed", lock=False)
    bucket = code_bucket_id(sandbox, str(doomed.id))
    own = sandbox.storage.upload_to_bucket(
        bucket, {"file_name": "only-mine.py", "content": b"ONLY = 'this analysis'\n"}
    )
    mine = store.blob_path(own[0].hash)
    assert mine.is_file()
    sandbox.core.delete_analysis(doomed.id)
    assert not mine.exists()
    bucket = code_bucket_id(sandbox, str(shared.id))
    for row in store.select("bucket-files", bucketId=bucket):  # the same files as doomed had
        assert store.blob_path(row["hash"]).is_file()


def test_collection_beside_a_running_hub_spares_young_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        orphan, _ = store.put_blob(__import__("io").BytesIO(b"nobody refers to me"))
        partial = store.blobs / ".incoming-cut-short"
        partial.write_bytes(b"half an upload")
        legacy = store.builds / ("ab" * 32)
        legacy.mkdir()
        (legacy / "main.py").write_text("a copy from an older flame_lab")
        young = collect(store, grace=OUT_OF_PROCESS_GRACE)
        assert young.blobs == young.temporary == 0 and store.blob_path(orphan).exists()
        old = 1_000_000_000
        for path in (store.blob_path(orphan), partial, legacy):
            os.utime(path, (old, old))
        done = collect(store, grace=OUT_OF_PROCESS_GRACE)
        assert (done.blobs, done.temporary, done.builds) == (1, 1, 1)
        assert not store.blob_path(orphan).exists() and not partial.exists()
        assert not legacy.exists() and done.bytes > 0
        assert orphan not in live_hashes(store)
    finally:
        store.close()


# -- a full disk ------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (the sandbox runs as root on CI, as the confinement tests need)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write until the file system says ENOSPC; the filler file, to delete to make room."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:  # unbuffered: nothing left to flush at close
        try:
            while True:
                fh.write(b"\0" * (1 << 16))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_is_a_507_naming_it_logged_and_nothing_half_written(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = small_disk / "hub"
    provisioned = provisioned_home(home, nodes=2)
    with HubThread(home) as server:
        core, storage = researcher_clients(server.url, provisioned)
        analysis = core.create_analysis(provisioned.project_id, name="disk-full")
        core.send_analysis_command(analysis.id, "storageCheck")
        bucket = core.find_analysis_buckets(filter={"analysis_id": analysis.id, "type": "CODE"})
        bucket_id = bucket[0].bucket_id
        filler = fill(small_disk)
        upload = {"file_name": "main.py", "content": os.urandom(1 << 18)}
        with caplog.at_level(logging.ERROR, logger="flame_lab.sandbox.hub"):
            with pytest.raises(HubStorageFull) as caught:
                with hub_errors("upload the analysis code"):
                    storage.upload_to_bucket(bucket_id, upload)
        assert (
            "disk is full" in caught.value.message and "nothing was stored" in caught.value.message
        )
        assert "sandbox gc" in caught.value.hint
        assert any("No space left on device" in r.getMessage() for r in caplog.records)
        store = server.hub.store
        assert list(store.blobs.glob(".incoming-*")) == []
        assert core.find_analysis_bucket_files(filter={"analysis_id": analysis.id}) == []
        filler.unlink()  # room again: the same upload now succeeds
        stored = storage.upload_to_bucket(bucket_id, upload)
        assert len(stored) == 1 and store.blob_path(stored[0].hash).is_file()


def test_the_raw_507_is_a_hub_api_error_the_client_maps(small_disk: Path) -> None:
    home = small_disk / "hub"
    provisioned = provisioned_home(home, nodes=2)
    with HubThread(home) as server:
        core, storage = researcher_clients(server.url, provisioned)
        analysis = core.create_analysis(provisioned.project_id, name="raw-507")
        core.send_analysis_command(analysis.id, "storageCheck")
        bucket = core.find_analysis_buckets(filter={"analysis_id": analysis.id, "type": "CODE"})
        fill(small_disk)
        with pytest.raises(HubAPIError) as caught:
            storage.upload_to_bucket(
                bucket[0].bucket_id, {"file_name": "x", "content": b"x" * 4096}
            )
        assert caught.value.error_response.status_code == 507


def test_a_record_the_full_disk_cannot_take_is_a_507_too(small_disk: Path) -> None:
    home = small_disk / "hub"
    provisioned = provisioned_home(home, nodes=2)
    with HubThread(home) as server:
        core, _ = researcher_clients(server.url, provisioned)
        core.get_nodes()  # logged in while there is room
        filler = fill(small_disk)
        try:
            with pytest.raises(HubStorageFull, match="disk is full"):
                with hub_errors("create the analysis"):
                    for i in range(200):  # until SQLite's WAL needs a page it cannot get
                        core.create_analysis(provisioned.project_id, name=f"no-room-{i}")
        finally:
            filler.unlink()
        assert core.create_analysis(provisioned.project_id, name="room-again") is not None
