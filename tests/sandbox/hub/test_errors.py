"""Every way a request can be refused: 401, 403, 404 (None to the client), 400, 413, and
commands in an illegal order. Raw httpx2 requests assert codes the client hides."""

from __future__ import annotations

import select
import socket
import uuid

import httpx2
import pytest
from flame_hub import CoreClient, HubAPIError

from flame_lab.errors import HubAuthError
from flame_lab.hubclient import hub_errors
from tests.sandbox.hub.conftest import (
    Sandbox,
    approve_all,
    code_bucket_id,
    distributed_analysis,
    ready_analysis,
    wait_for,
)


def status_of(err: pytest.ExceptionInfo[HubAPIError]) -> int:
    return err.value.error_response.status_code


def token_of(client: CoreClient) -> str:
    client.get_master_images()  # make sure the auth flow has a token
    return client._client.auth._current_token.access_token


def raw(box: Sandbox, client: CoreClient | None = None) -> httpx2.Client:
    headers = {"Authorization": f"Bearer {token_of(client)}"} if client else {}
    return httpx2.Client(base_url=box.url, headers=headers)


# -- 401 -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/core/analyses", "/core/nodes", "/storage/buckets", "/auth/users", "/core/analysis-nodes"],
)
def test_every_route_but_token_needs_a_bearer_token(sandbox: Sandbox, path: str) -> None:
    with raw(sandbox) as http:
        r = http.get(path)
    assert r.status_code == 401
    body = r.json()
    assert set(body) == {"statusCode", "code", "message", "issues"} and body["statusCode"] == 401


def test_an_unknown_token_is_refused_as_authup_does(sandbox: Sandbox) -> None:
    client = CoreClient(f"{sandbox.url}/core", auth="not-a-token")
    with pytest.raises(HubAPIError) as err:
        client.get_analyses()
    assert status_of(err) == 400 and "The JWT is invalid" in str(err.value)
    with pytest.raises(HubAuthError):  # flame_lab's client counts it as a login problem
        with hub_errors("list analyses"):
            client.get_analyses()


def test_wrong_passwords_and_secrets_get_no_token(sandbox: Sandbox) -> None:
    with raw(sandbox) as http:
        user = http.post(
            "/auth/token",
            json={"grant_type": "password", "username": "researcher", "password": "x"},
        )
        node = sandbox.nodes["uk-aachen"].node
        robot = http.post(
            "/auth/token",
            json={
                "grant_type": "client_credentials",
                "client_id": node.client_id,
                "client_secret": "x",
            },
        )
    assert user.status_code == 400 and user.json()["code"] == "invalid_grant"
    assert robot.status_code == 401 and robot.json()["code"] == "invalid_client"
    assert "x" not in user.json()["message"].split()


# -- 403 -------------------------------------------------------------------------------------
def test_a_node_cannot_create_an_analysis(sandbox: Sandbox) -> None:
    with pytest.raises(HubAPIError) as err:
        sandbox.nodes["uk-aachen"].core.create_analysis(sandbox.project_id, name="sneaky")
    assert status_of(err) == 403


def test_a_node_cannot_run_analysis_commands(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "node-cmd")
    with pytest.raises(HubAPIError) as err:
        sandbox.nodes["aggregator"].core.send_analysis_command(analysis.id, "buildStart")
    assert status_of(err) == 403


def test_a_node_cannot_approve_for_another_node(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "approve-other")
    theirs = sandbox.core.find_analysis_nodes(
        filter={"analysis_id": analysis.id, "node_id": sandbox.node_id("uk-koeln")}
    )[0]
    with pytest.raises(HubAPIError) as err:
        sandbox.nodes["uk-aachen"].core.update_analysis_node(theirs.id, approval_status="approved")
    assert status_of(err) == 403


def test_the_researcher_cannot_approve_for_a_node(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "approve-self")
    theirs = sandbox.core.find_analysis_nodes(
        filter={"analysis_id": analysis.id, "node_id": sandbox.node_id("uk-koeln")}
    )[0]
    with pytest.raises(HubAPIError) as err:
        sandbox.core.update_analysis_node(theirs.id, approval_status="approved")
    assert status_of(err) == 403


def test_a_node_cannot_report_another_nodes_progress(sandbox: Sandbox) -> None:
    analysis = distributed_analysis(sandbox, "progress-other")
    theirs = sandbox.core.find_analysis_nodes(
        filter={"analysis_id": analysis.id, "node_id": sandbox.node_id("uk-koeln")}
    )[0]
    with pytest.raises(HubAPIError) as err:
        sandbox.nodes["uk-aachen"].core.update_analysis_node(theirs.id, execution_progress=99)
    assert status_of(err) == 403


def test_a_node_cannot_write_another_nodes_logs(sandbox: Sandbox) -> None:
    analysis = distributed_analysis(sandbox, "logs-other")
    with pytest.raises(HubAPIError) as err:
        sandbox.nodes["uk-aachen"].core.create_analysis_node_log(
            analysis.id, sandbox.node_id("uk-koeln"), "info", "forged"
        )
    assert status_of(err) == 403
    with pytest.raises(HubAPIError) as err:
        sandbox.core.create_analysis_node_log(analysis.id, sandbox.node_id("uk-koeln"), "info", "x")
    assert status_of(err) == 403


def test_only_the_researcher_writes_code_and_only_nodes_write_results(sandbox: Sandbox) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="bucket-rights")
    code = code_bucket_id(sandbox, str(analysis.id))
    result = code_bucket_id(sandbox, str(analysis.id), "RESULT")
    with pytest.raises(HubAPIError) as err:
        sandbox.nodes["uk-aachen"].storage.upload_to_bucket(
            code, {"file_name": "x.py", "content": b"1"}
        )
    assert status_of(err) == 403
    with pytest.raises(HubAPIError) as err:
        sandbox.storage.upload_to_bucket(result, {"file_name": "fake.bin", "content": b"1"})
    assert status_of(err) == 403


def test_a_node_outside_the_analysis_cannot_read_its_buckets(sandbox: Sandbox) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="outsider")
    code = code_bucket_id(sandbox, str(analysis.id))
    members = sandbox.core.find_analysis_nodes(
        filter={"analysis_id": analysis.id, "node_id": sandbox.node_id("uk-koeln")}
    )
    sandbox.core.delete_analysis_node(members[0].id)
    with pytest.raises(HubAPIError) as err:
        list(sandbox.nodes["uk-koeln"].storage.stream_bucket_tarball(code))
    assert status_of(err) == 403


# -- 404 -------------------------------------------------------------------------------------
def test_missing_records_are_none_to_the_client(sandbox: Sandbox) -> None:
    missing = uuid.uuid4()
    assert sandbox.core.get_analysis(missing) is None
    assert sandbox.core.get_node(missing) is None
    assert sandbox.core.get_analysis_node(missing) is None
    assert sandbox.storage.get_bucket(missing) is None
    assert sandbox.storage.get_bucket_file(missing) is None
    with raw(sandbox, sandbox.core) as http:
        assert http.get("/core/analyses/not-a-uuid").status_code == 404
        assert http.get("/core/no-such-collection").status_code == 404
        assert (
            http.post(
                f"/core/analyses/{missing}/command", json={"command": "buildStart"}
            ).status_code
            == 404
        )


# -- 400 -------------------------------------------------------------------------------------
def test_snake_case_body_fields_are_rejected_by_name(sandbox: Sandbox) -> None:
    with raw(sandbox, sandbox.core) as http:
        r = http.post("/core/analyses", json={"project_id": sandbox.project_id})
    assert r.status_code == 400
    assert "project_id" in r.json()["message"] and "projectId" in r.json()["message"]
    assert r.json()["issues"][0]["path"] == ["project_id"]


def test_unknown_body_fields_and_wrong_types_are_rejected(sandbox: Sandbox) -> None:
    with raw(sandbox, sandbox.core) as http:
        unknown = http.post("/core/projects", json={"name": "p", "colour": "red"})
        wrong = http.post("/core/projects", json={"name": 5})
        bad_json = http.post(
            "/core/projects", content=b"{", headers={"Content-Type": "application/json"}
        )
    assert unknown.status_code == 400 and "colour" in unknown.json()["message"]
    assert wrong.status_code == 400 and "name" in wrong.json()["message"]
    assert bad_json.status_code == 400


def test_unknown_query_keys_filters_and_relations_are_rejected(sandbox: Sandbox) -> None:
    with raw(sandbox, sandbox.core) as http:
        key = http.get("/core/analyses", params={"page_limit": "5"})
        rel = http.get("/core/analyses", params={"include": "owner"})
    assert key.status_code == 400 and "page_limit" in key.json()["message"]
    assert rel.status_code == 400 and "owner" in rel.json()["message"]
    with pytest.raises(HubAPIError) as err:
        sandbox.core.find_analyses(filter={"colour": "red"})
    assert status_of(err) == 400 and "colour" in str(err.value)


def test_unsafe_upload_paths_are_rejected(sandbox: Sandbox) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="unsafe")
    code = code_bucket_id(sandbox, str(analysis.id))
    for name in ("../escape.py", "/etc/passwd"):
        with pytest.raises(HubAPIError) as err:
            sandbox.storage.upload_to_bucket(code, {"file_name": name, "content": b"1"})
        assert status_of(err) == 400


# -- 413 -------------------------------------------------------------------------------------
def test_an_upload_over_the_limit_is_refused_before_it_is_stored(sandbox: Sandbox) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="too-big")
    code = code_bucket_id(sandbox, str(analysis.id))
    big = b"x" * (300 * 1024)  # the fixture's limit is 256 KiB
    with pytest.raises(HubAPIError) as err:
        sandbox.storage.upload_to_bucket(code, {"file_name": "big.bin", "content": big})
    assert status_of(err) == 413
    assert sandbox.storage.find_bucket_files(filter={"bucket_id": code}) == []


def test_an_unannounced_body_over_the_limit_is_counted_and_refused(sandbox: Sandbox) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="too-big-chunked")
    code = code_bucket_id(sandbox, str(analysis.id))
    host, port = sandbox.url.removeprefix("http://").split(":")
    head = (
        f"POST /storage/buckets/{code}/upload HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token_of(sandbox.core)}\r\n"
        "Content-Type: multipart/form-data; boundary=zzz\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"2000\r\n" + b"y" * 0x2000 + b"\r\n"
    answer = b""
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode())
        for _ in range(64):  # 512 KiB, twice the limit; stop as soon as the hub answers
            if select.select([sock], [], [], 0.01)[0]:
                break
            sock.sendall(chunk)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert sandbox.storage.find_bucket_files(filter={"bucket_id": code}) == []


# -- illegal order ---------------------------------------------------------------------------
def command_error(box: Sandbox, analysis_id: object, command: str) -> HubAPIError:
    with pytest.raises(HubAPIError) as err:
        box.core.send_analysis_command(analysis_id, command)
    assert status_of(err) == 400
    return err.value


def test_locking_needs_an_entrypoint(sandbox: Sandbox) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="no-entry")
    assert "entrypoint" in str(command_error(sandbox, analysis.id, "configurationLock"))


def test_locking_needs_a_default_node_and_an_aggregator(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "no-aggregator", lock=False)
    for member in sandbox.core.find_analysis_nodes(filter={"analysis_id": analysis.id}):
        if str(member.node_id) == sandbox.node_id("aggregator"):
            sandbox.core.delete_analysis_node(member.id)
    assert "aggregator" in str(command_error(sandbox, analysis.id, "configurationLock"))


def test_commands_out_of_order_are_refused(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "order", lock=False)
    command_error(sandbox, analysis.id, "buildStart")  # not locked
    command_error(sandbox, analysis.id, "configurationUnlock")  # not locked
    command_error(sandbox, analysis.id, "buildCheck")  # nothing built
    sandbox.core.send_analysis_command(analysis.id, "configurationLock")
    command_error(sandbox, analysis.id, "configurationLock")  # twice
    assert "approved" in str(command_error(sandbox, analysis.id, "buildStart"))  # no approvals
    command_error(sandbox, analysis.id, "distributionStart")  # not built
    approve_all(sandbox, analysis.id)
    sandbox.core.send_analysis_command(analysis.id, "buildStart")
    command_error(sandbox, analysis.id, "buildStart")  # being built (or already built)
    build_done = wait_for(
        lambda: sandbox.core.get_analysis(analysis.id).build_status == "executed", "the build"
    )
    assert build_done
    command_error(sandbox, analysis.id, "buildStart")  # already built
    sandbox.core.send_analysis_command(analysis.id, "distributionStart")
    command_error(sandbox, analysis.id, "distributionStart")  # twice
    command_error(sandbox, analysis.id, "configurationUnlock")  # too late


def test_approval_before_lock_and_progress_before_distribution_are_refused(
    sandbox: Sandbox,
) -> None:
    analysis = ready_analysis(sandbox, "early", lock=False)
    node = sandbox.nodes["uk-aachen"]
    mine = node.core.find_analysis_nodes(
        filter={"analysis_id": analysis.id, "node_id": node.node.id}
    )[0]
    with pytest.raises(HubAPIError) as err:
        node.core.update_analysis_node(mine.id, approval_status="approved")
    assert status_of(err) == 400
    sandbox.core.send_analysis_command(analysis.id, "configurationLock")
    node.core.update_analysis_node(mine.id, approval_status="approved")
    with pytest.raises(HubAPIError) as err:
        node.core.update_analysis_node(mine.id, execution_status="started")
    assert status_of(err) == 400


def test_a_locked_analysis_cannot_be_edited(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "locked-edit")
    with pytest.raises(HubAPIError) as err:
        sandbox.core.update_analysis(analysis.id, description="changed")
    assert status_of(err) == 400


def test_an_unknown_command_names_the_choices(sandbox: Sandbox) -> None:
    analysis = sandbox.core.create_analysis(sandbox.project_id, name="bad-command")
    with raw(sandbox, sandbox.core) as http:
        r = http.post(f"/core/analyses/{analysis.id}/command", json={"command": "explode"})
    assert r.status_code == 400 and "buildStart" in r.json()["message"]


# -- what the sandbox does not implement fails loudly ------------------------------------------
def test_operator_routes_are_for_admins_and_the_rest_fails_with_hub_errors(
    sandbox: Sandbox,
) -> None:
    node_id = sandbox.node_id("uk-aachen")
    calls = {
        "delete_node": lambda: sandbox.core.delete_node(node_id),
        "get_registries": lambda: sandbox.core.get_registries(),
        "sync_master_images": lambda: sandbox.core.sync_master_images(),
        "get_node_client_credentials": lambda: sandbox.core.get_node_client_credentials(node_id),
    }
    for name, call in calls.items():
        with pytest.raises(HubAPIError) as err:
            call()
        assert status_of(err) == 403 and "only an admin" in str(err.value), name
    with raw(sandbox, sandbox.core) as http:
        r = http.delete("/core/analyses")
        assert r.status_code == 405 and r.json()["statusCode"] == 405
        assert http.get("/core//projects").status_code == 200  # slashes merge, as a proxy does
