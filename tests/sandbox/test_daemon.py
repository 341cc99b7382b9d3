"""`sandbox up/status/down/reset` with a real detached hub process, and crash safety."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from flame_hub import CoreClient, StorageClient
from flame_hub.auth import ClientAuth, PasswordAuth

from flame_lab.cli import sandbox as sandbox_cli
from flame_lab.errors import SandboxError
from flame_lab.sandbox import daemon
from flame_lab.security.keys import NodePublicIdentity, load_node_identity


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="flame-lab")
    sandbox_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sandbox", *argv])
    return args.func(args)


def researcher(info: dict) -> tuple[CoreClient, StorageClient]:
    auth = PasswordAuth(info["username"], info["password"], base_url=info["authUrl"])
    return CoreClient(info["coreUrl"], auth=auth), StorageClient(info["storageUrl"], auth=auth)


@pytest.fixture(scope="module")
def running_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("sandbox") / "home"
    daemon.up(home)
    yield home
    daemon.down(home)


def test_status_json_tells_any_flame_client_how_to_connect(running_home: Path, capsys) -> None:
    assert cli("status", "--json", "--home", str(running_home)) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["running"] and info["coreUrl"].endswith("/core")
    core, _ = researcher(info)
    assert {n.name for n in core.get_nodes()} == {"uk-aachen", "uk-koeln", "aggregator"}
    project = core.get_project(info["projectId"])
    assert project.name == "sandbox" and project.nodes == 3
    for node in info["nodes"]:
        secrets = json.loads(Path(node["secretsFile"]).read_text())
        as_node = CoreClient(
            info["coreUrl"],
            auth=ClientAuth(secrets["clientId"], secrets["clientSecret"], base_url=info["authUrl"]),
        )
        assert str(as_node.get_node(node["id"]).client_id) == node["clientId"]


def test_status_json_names_an_admin_who_sees_everything(running_home: Path, capsys) -> None:
    assert cli("status", "--json", "--home", str(running_home)) == 0
    info = json.loads(capsys.readouterr().out)
    admin = info["admin"]
    assert admin["username"] == "admin" and admin["password"]
    core, _ = researcher(info)
    mine = core.create_analysis(info["projectId"], name="owned-by-the-researcher")
    auth = PasswordAuth(admin["username"], admin["password"], base_url=info["authUrl"])
    as_admin = CoreClient(info["coreUrl"], auth=auth)
    assert as_admin.get_analysis(mine.id).id == mine.id
    as_admin.delete_analysis(mine.id)
    assert core.get_analysis(mine.id) is None


def test_credential_and_key_files_are_private(running_home: Path) -> None:
    info = daemon.status(running_home)
    private = [Path(info["credentialsFile"]), Path(info["admin"]["credentialsFile"])]
    for node in info["nodes"]:
        private += [Path(node["secretsFile"]), Path(node["identityFile"])]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(running_home.stat().st_mode) == 0o700


def test_each_node_publishes_its_identity_and_can_open_its_key_file(running_home: Path) -> None:
    info = daemon.status(running_home)
    core, _ = researcher(info)
    for node in info["nodes"]:
        public = NodePublicIdentity.from_dict(
            json.loads(Path(node["publicIdentityFile"]).read_text())
        )
        assert core.get_node(node["id"]).public_key == public.hub_public_key
        secrets = json.loads(Path(node["secretsFile"]).read_text())
        assert "identityPassphrase" not in secrets  # not beside the key it unlocks
        passphrase_file = Path(node["passphraseFile"])
        assert passphrase_file.parent != Path(node["identityFile"]).parent
        assert stat.S_IMODE(passphrase_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(passphrase_file.parent.stat().st_mode) == 0o700
        passphrase = passphrase_file.read_text()
        assert passphrase not in Path(node["identityFile"]).read_text()
        identity = load_node_identity(Path(node["identityFile"]), passphrase)
        assert identity.public.key_id == public.key_id


def test_a_second_up_reuses_the_running_hub(running_home: Path, capsys) -> None:
    before = daemon.status(running_home)
    assert cli("up", "--home", str(running_home)) == 0
    assert capsys.readouterr().out.strip() == before["url"]
    assert daemon.status(running_home)["pid"] == before["pid"]


def test_state_survives_kill_minus_nine(tmp_path: Path) -> None:
    home = tmp_path / "crash"
    first = daemon.up(home, nodes=2)
    try:
        core, storage = researcher(daemon.status(home))
        analysis = core.create_analysis(daemon.status(home)["projectId"], name="survivor")
        core.send_analysis_command(analysis.id, "storageCheck")  # buckets now, not shortly
        code = core.find_analysis_buckets(filter={"analysis_id": analysis.id, "type": "CODE"})
        bucket = code[0].bucket_id
        uploaded = storage.upload_to_bucket(
            bucket, {"file_name": "src/main.py", "content": b"print(42)\n"}
        )
        os.kill(first.pid, signal.SIGKILL)
        second = daemon.up(home)  # the stale pid file is noticed and replaced
        assert second.pid != first.pid
        core, storage = researcher(daemon.status(home))
        again = core.get_analysis(analysis.id)
        assert again is not None and again.name == "survivor"
        files = core.find_analysis_bucket_files(filter={"analysis_id": analysis.id})
        assert [f.path for f in files] == ["src/main.py"]
        assert b"".join(storage.stream_bucket_file(uploaded[0].id)) == b"print(42)\n"
    finally:
        daemon.down(home)


def test_down_keeps_data_and_a_stale_pid_file_is_replaced(tmp_path: Path) -> None:
    home = tmp_path / "stale"
    daemon.up(home, nodes=2)
    project_id = daemon.status(home)["projectId"]
    assert daemon.down(home) and not daemon.status(home)["running"]
    (home / daemon.PID_FILE).write_text("999999")  # a pid that is not a hub
    assert daemon.running(home) is None
    try:
        daemon.up(home)
        core, _ = researcher(daemon.status(home))
        assert core.get_project(project_id) is not None
    finally:
        daemon.down(home)


def test_reset_asks_first_and_then_deletes_everything(tmp_path: Path, monkeypatch, capsys) -> None:
    home = tmp_path / "gone"
    daemon.initialise(home, nodes=2)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert cli("reset", "--home", str(home)) == 1 and home.exists()
    assert cli("reset", "--yes", "--home", str(home)) == 0 and not home.exists()
    assert cli("status", "--home", str(home)) == 3
    assert "no sandbox" in capsys.readouterr().out


def test_a_sandbox_needs_a_site_and_an_aggregator(tmp_path: Path) -> None:
    with pytest.raises(SandboxError):
        daemon.initialise(tmp_path / "tiny", nodes=1)


def test_home_defaults_to_the_configured_sandbox_dir(flame_home: Path) -> None:
    assert daemon.home_dir() == flame_home / "sandbox"
    assert daemon.status()["initialised"] is False


def test_sandbox_gc_reclaims_orphans_beside_the_running_hub(running_home: Path, capsys) -> None:
    orphan = running_home / "blobs" / "00" / ("00" * 32)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"x" * 1000)  # no row names it: an upload cut short
    young = running_home / "blobs" / "00" / ("01" * 32)
    young.write_bytes(b"y" * 1000)
    os.utime(orphan, (1_000_000_000, 1_000_000_000))
    assert cli("gc", "--home", str(running_home)) == 0
    out = capsys.readouterr().out
    assert out.startswith("reclaimed ") and "1 stored file(s)" in out
    assert not orphan.exists() and young.exists()  # young: it may be an upload in flight
    assert daemon.status(running_home)["running"]


def test_only_nodes_that_see_nothing_but_synthetic_data_may_run_unconfined(tmp_path: Path) -> None:
    from flame_lab.privacy import load_policy
    from flame_lab.sandbox.daemon import _provision_node
    from flame_lab.sandbox.node import synthetic
    from flame_lab.sandbox.node.layout import NodeFolder

    own = tmp_path / "own-data"
    synthetic.write(synthetic.generate("x", n_patients=10), own)
    cases = {
        ("synthetic-site", "default", None, True): True,
        ("synthetic-aggregator", "aggregator", None, True): True,
        ("user-data-site", "default", own, False): False,
        ("synthetic-site-beside-user-data", "default", None, False): True,
        ("aggregator-beside-user-data", "aggregator", None, False): False,
    }
    for (name, node_type, data, all_synthetic), allowed in cases.items():
        folder = NodeFolder(tmp_path / name)
        folder.root.mkdir()
        _provision_node(folder, node_type, data, all_synthetic)
        assert load_policy(folder.policy).limits.allow_unconfined is allowed, name
