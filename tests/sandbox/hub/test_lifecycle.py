"""The researcher's whole lifecycle, driven only through PrivateAIM's flame_hub clients."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import httpx2
import pytest
from flame_hub import HubAPIError

from flame_lab.sandbox.hub.lifecycle import aggregate_execution, build_hash
from flame_lab.sandbox.node.agent import OPEN_LINKS
from tests.sandbox.hub.conftest import (
    Sandbox,
    approve_all,
    code_bucket_id,
    distributed_analysis,
    ready_analysis,
    wait_for,
)


def test_the_sandbox_project_has_every_node_approved(sandbox: Sandbox) -> None:
    members = sandbox.core.find_project_nodes(filter={"project_id": sandbox.project_id})
    assert len(members) == 3
    assert {m.approval_status for m in members} == {"approved"}
    nodes = {n.name: n for n in sandbox.core.get_nodes()}
    assert nodes["aggregator"].type == "aggregator"
    assert nodes["uk-aachen"].type == nodes["uk-koeln"].type == "default"
    images = sandbox.core.get_master_images()
    assert images[0].virtual_path == "python/base"  # the project's image, listed first
    assert {"python/ml", "python/use-cases/fedstats"} <= {i.virtual_path for i in images}
    assert not [i for i in images if i.virtual_path.startswith(("python/conda/", "r/"))]
    assert [a["value"] for a in images[0].command_arguments] == ["-u"]


def test_a_new_analysis_gets_nodes_now_and_buckets_shortly_after(sandbox: Sandbox) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="Buckets Arrive")
    assert analysis.name == "buckets-arrive" and analysis.display_name == "Buckets Arrive"
    assert analysis.nodes == 3 and analysis.nodes_approved == 1  # the aggregator only
    assert analysis.configuration_image_valid and not analysis.configuration_entrypoint_valid
    code_bucket_id(sandbox, str(analysis.id), "TEMP")  # waits for the async creation
    kinds = {
        b.type.value
        for b in sandbox.core.find_analysis_buckets(filter={"analysis_id": analysis.id})
    }
    assert kinds == {"CODE", "RESULT", "TEMP"}


def test_uploaded_code_keeps_relative_paths_and_is_indexed_for_the_analysis(
    sandbox: Sandbox,
) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="paths")
    bucket = code_bucket_id(sandbox, str(analysis.id))
    files = sandbox.storage.upload_to_bucket(
        bucket,
        {"file_name": "pkg/sub/mod.py", "content": b"A = 1\n"},
        {"file_name": "main.py", "content": io.BytesIO(b"import pkg\n")},
    )
    by_path = {f.path: f for f in files}
    assert by_path["pkg/sub/mod.py"].name == "mod.py"
    assert by_path["pkg/sub/mod.py"].directory == "pkg/sub"
    assert by_path["main.py"].hash == hashlib.sha256(b"import pkg\n").hexdigest()
    indexed = sandbox.core.find_analysis_bucket_files(filter={"analysis_id": analysis.id})
    assert {f.path for f in indexed} == {"pkg/sub/mod.py", "main.py"}
    assert not any(f.root for f in indexed)
    # registering a file the way a real-Hub client does finds the existing row
    again = sandbox.core.create_analysis_bucket_file(
        "main.py", by_path["main.py"].id, bucket, indexed[0].analysis_bucket_id, is_entrypoint=True
    )
    assert again.id in {f.id for f in indexed} and again.root
    assert sandbox.core.get_analysis(analysis.id).configuration_entrypoint_valid


def test_one_entrypoint_per_analysis(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "one-root", lock=False)
    other = sandbox.core.find_analysis_bucket_files(
        filter={"analysis_id": analysis.id, "path": "lib/helpers.py"}
    )[0]
    sandbox.core.update_analysis_bucket_file(other.id, is_entrypoint=True)
    roots = sandbox.core.find_analysis_bucket_files(
        filter={"analysis_id": analysis.id, "root": True}
    )
    assert [r.path for r in roots] == ["lib/helpers.py"]


def test_whole_lifecycle_from_draft_to_downloaded_result(sandbox: Sandbox) -> None:
    core, storage = sandbox.core, sandbox.storage
    analysis = ready_analysis(sandbox, "lifecycle")
    assert analysis.configuration_locked

    approve_all(sandbox, analysis.id)
    analysis = core.get_analysis(analysis.id)
    assert analysis.nodes_approved == 3 and analysis.distribution_nodes_valid

    started = core.send_analysis_command(analysis.id, "buildStart")
    assert started.build_status == "starting" and started.build_progress == 0  # as on the Hub

    def checked() -> object:
        answer = core.send_analysis_command(analysis.id, "buildCheck")
        return answer if answer.build_status == "executed" else None

    built = wait_for(checked, "the background build")
    assert built.build_status == "executed" and built.build_progress == 100
    expected = build_hash(
        [
            ("lib/helpers.py", hashlib.sha256(b"X = 1\n").hexdigest()),
            ("main.py", hashlib.sha256(b"print('hello')\n").hexdigest()),
        ]
    )
    assert built.build_hash == expected
    assert core.send_analysis_command(analysis.id, "buildCheck").build_status == "executed"
    distributed = core.send_analysis_command(analysis.id, "distributionStart")
    assert distributed.distribution_status == "executed"

    # each node reports progress on its own analysis-node
    progress = {
        "uk-aachen": ("executed", 100),
        "uk-koeln": ("executing", 50),
        "aggregator": ("started", 0),
    }
    for name, (status, pct) in progress.items():
        node = sandbox.nodes[name]
        mine = node.core.find_analysis_nodes(
            filter={"analysis_id": analysis.id, "node_id": node.node.id}
        )[0]
        node.core.update_analysis_node(mine.id, execution_status=status, execution_progress=pct)
        node.core.create_analysis_node_log(
            analysis.id, node.node.id, "info", f"{name} says {status}"
        )
    analysis = core.get_analysis(analysis.id)
    assert analysis.execution_status == "started"  # the least advanced node
    assert analysis.execution_progress == 50  # the mean

    logs = core.find_analysis_node_logs(
        filter={"analysis_id": analysis.id, "node_id": sandbox.node_id("uk-koeln")}
    )
    assert [log.message for log in logs] == ["uk-koeln says executing"]
    assert logs[0].labels["nodeId"] == sandbox.node_id("uk-koeln")
    hub_logs = core.find_analysis_logs(filter={"analysis_id": analysis.id})
    assert any(expected in log.message for log in hub_logs)

    # the aggregator uploads the (sealed) result; the researcher downloads it
    aggregator = sandbox.nodes["aggregator"]
    result_bucket = code_bucket_id(sandbox, str(analysis.id), "RESULT")
    aggregator.storage.upload_to_bucket(
        result_bucket, {"file_name": "result.bin", "content": b"\x00sealed\xff"}
    )
    mine = aggregator.core.find_analysis_nodes(
        filter={"analysis_id": analysis.id, "node_id": aggregator.node.id}
    )[0]
    aggregator.core.update_analysis_node(
        mine.id, execution_status="executed", execution_progress=100
    )
    results = core.find_analysis_bucket_files(
        filter={"analysis_id": analysis.id, "bucket_id": result_bucket}
    )
    assert [r.path for r in results] == ["result.bin"]
    assert b"".join(storage.stream_bucket_file(results[0].bucket_file_id)) == b"\x00sealed\xff"
    tar = tarfile.open(fileobj=io.BytesIO(b"".join(storage.stream_bucket_tarball(result_bucket))))
    assert tar.extractfile("result.bin").read() == b"\x00sealed\xff"


def test_nodes_fetch_exactly_the_built_snapshot(sandbox: Sandbox) -> None:
    analysis = distributed_analysis(sandbox, "snapshot")
    bucket = code_bucket_id(sandbox, str(analysis.id))
    node = sandbox.nodes["uk-aachen"]
    raw = b"".join(node.storage.stream_bucket_tarball(bucket))
    tar = tarfile.open(fileobj=io.BytesIO(raw))
    assert sorted(tar.getnames()) == ["lib/helpers.py", "main.py"]
    assert tar.extractfile("main.py").read() == b"print('hello')\n"
    with httpx2.Client(auth=node.core._client.auth) as http:
        head = http.get(f"{sandbox.url}/storage/buckets/{bucket}/stream")
    assert head.headers["X-Build-Hash"] == analysis.build_hash
    # and the code cannot change underneath the approval
    with pytest.raises(HubAPIError) as err:
        sandbox.storage.upload_to_bucket(bucket, {"file_name": "main.py", "content": b"evil()"})
    assert err.value.error_response.status_code == 400


def test_unlocking_resets_the_default_nodes_approvals(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "unlock")
    approve_all(sandbox, analysis.id)
    unlocked = sandbox.core.send_analysis_command(analysis.id, "configurationUnlock")
    assert not unlocked.configuration_locked
    assert unlocked.nodes_approved == 1  # only the aggregator stays approved
    statuses = {
        str(n.node_id): n.approval_status
        for n in sandbox.core.find_analysis_nodes(filter={"analysis_id": analysis.id})
    }
    assert statuses[sandbox.node_id("aggregator")] == "approved"
    assert statuses[sandbox.node_id("uk-aachen")] is None


def test_a_failed_node_fails_the_analysis(sandbox: Sandbox) -> None:
    analysis = distributed_analysis(sandbox, "fails")
    node = sandbox.nodes["uk-koeln"]
    mine = node.core.find_analysis_nodes(
        filter={"analysis_id": analysis.id, "node_id": node.node.id}
    )[0]
    node.core.update_analysis_node(mine.id, execution_status="failed", execution_progress=10)
    assert sandbox.core.get_analysis(analysis.id).execution_status == "failed"


@pytest.mark.parametrize(
    ("statuses", "progress", "expected"),
    [
        ([None, None], [None, None], (None, None)),
        (["executed", "failed"], [100, 20], ("failed", 60)),
        (["executed", "executing"], [100, 40], ("executing", 70)),
        (["executed", None], [100, None], ("starting", 50)),
        (["executed", "executed"], [100, 100], ("executed", 100)),
    ],
)
def test_execution_status_is_the_least_advanced_and_progress_the_mean(
    statuses: list, progress: list, expected: tuple
) -> None:
    assert aggregate_execution(statuses, progress) == expected


def test_collections_carry_meta_with_schema_and_obey_rapiq(sandbox: Sandbox) -> None:
    for name in ("q-alpha", "q-beta", "q-gamma"):
        sandbox.core.create_analysis(sandbox.project_id, name=name)
    found, meta = sandbox.core.find_analyses(
        filter={"name": ("~", "q-")},
        sort={"by": "name", "order": "descending"},
        page={"limit": 2, "offset": 0},
        meta=True,
    )
    assert [a.name for a in found] == ["q-gamma", "q-beta"]
    assert (meta.total, meta.limit, meta.offset) == (3, 2, 0)
    assert "name" in meta.response_schema["filters"]
    rest = sandbox.core.find_analyses(
        filter={"name": ("~", "q-")}, sort={"by": "name"}, page={"offset": 2}
    )
    assert [a.name for a in rest] == ["q-gamma"]
    others = sandbox.core.find_analyses(
        filter={"name": ("!", "q-alpha"), "display_name": ("~", "q-")}
    )
    assert sorted(a.name for a in others) == ["q-beta", "q-gamma"]
    none_built = sandbox.core.find_analyses(filter={"build_hash": "null", "name": ("~", "q-")})
    assert len(none_built) == 3
    with_project = sandbox.core.find_analyses(filter={"name": "q-alpha"})
    assert with_project[0].project is not None and with_project[0].master_image is not None


def test_page_limit_is_capped_at_fifty(sandbox: Sandbox) -> None:
    _, meta = sandbox.core.find_analyses(page={"limit": 500}, meta=True)
    assert meta.limit == 50


def test_fields_plus_adds_optional_fields(sandbox: Sandbox) -> None:
    token = sandbox.core._client.auth._current_token.access_token
    with httpx2.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        plain = http.get(f"{sandbox.url}/auth/users").json()["data"][0]
        more = http.get(f"{sandbox.url}/auth/users", params={"fields": "+email"}).json()["data"][0]
    assert "email" not in plain and "email" in more
    assert "passwordHash" not in json.dumps(more)


def test_a_node_agent_lists_only_the_analyses_still_open_for_it(sandbox: Sandbox) -> None:
    executed = distributed_analysis(sandbox, "done")
    rejected, waiting = ready_analysis(sandbox, "refused"), ready_analysis(sandbox, "open")
    node = sandbox.nodes["uk-aachen"]
    links = {
        str(link.analysis_id): link
        for link in node.core.find_analysis_nodes(filter={"node_id": node.node.id})
    }
    node.core.update_analysis_node(links[str(executed.id)].id, execution_status="executed")
    node.core.update_analysis_node(links[str(rejected.id)].id, approval_status="rejected")
    found = node.core.find_analysis_nodes(filter=OPEN_LINKS | {"node_id": node.node.id})
    ids = {str(link.analysis_id) for link in found}
    assert str(waiting.id) in ids and not ids & {str(executed.id), str(rejected.id)}
