"""Ownership and roles at the sandbox hub, played by the adversaries: a second researcher who
goes after the first one's analyses, and a node that tries to rewrite another node."""

from __future__ import annotations

import pytest
from flame_hub import CoreClient, HubAPIError, StorageClient
from flame_hub.auth import PasswordAuth

from flame_lab.sandbox.hub.auth import add_researcher
from tests.sandbox.hub.conftest import Sandbox, code_bucket_id, ready_analysis


def status_of(err: pytest.ExceptionInfo[HubAPIError]) -> int:
    return err.value.error_response.status_code


def refused(call, *words: str) -> str:
    """Call, expect a 403 whose message names the rule (every word in it); return it."""
    with pytest.raises(HubAPIError) as err:
        call()
    assert status_of(err) == 403, err.value
    message = err.value.error_response.message
    for word in words:
        assert word in message, message
    return message


def login(box: Sandbox, name: str, password: str) -> tuple[CoreClient, StorageClient]:
    auth = PasswordAuth(name, password, base_url=f"{box.url}/auth")
    return CoreClient(f"{box.url}/core", auth=auth), StorageClient(f"{box.url}/storage", auth=auth)


@pytest.fixture(scope="module")
def mallory(sandbox: Sandbox) -> tuple[CoreClient, StorageClient]:
    """A second registered researcher of the same sandbox."""
    password = add_researcher(sandbox.hub.store, "mallory")
    return login(sandbox, "mallory", password)


@pytest.fixture(scope="module")
def admin(sandbox: Sandbox) -> tuple[CoreClient, StorageClient]:
    p = sandbox.provisioned
    return login(sandbox, p.admin_username, p.admin_password)


@pytest.fixture(scope="module")
def victim(sandbox: Sandbox):
    """The first researcher's locked analysis with code, logs and a node waiting to approve."""
    return ready_analysis(sandbox, "victims-analysis")


# -- a second researcher ------------------------------------------------------------------------
def test_another_researcher_does_not_see_the_analysis_in_listings(sandbox, mallory, victim):
    core, _ = mallory
    assert str(victim.id) not in {str(a.id) for a in core.get_analyses()}
    assert str(victim.id) in {str(a.id) for a in sandbox.core.get_analyses()}
    assert core.find_analysis_nodes() == [] or all(
        str(n.analysis_id) != str(victim.id) for n in core.find_analysis_nodes()
    )


def test_another_researcher_cannot_read_the_analysis_or_its_parts(mallory, victim):
    core, _ = mallory
    refused(lambda: core.get_analysis(victim.id), "belong to the researcher who created it")
    refused(lambda: core.find_analyses(filter={"id": victim.id}), "researcher who created it")
    refused(lambda: core.find_analysis_logs(filter={"analysis_id": victim.id}), "created it")
    refused(lambda: core.find_analysis_nodes(filter={"analysis_id": victim.id}), "created it")
    refused(lambda: core.find_analysis_buckets(filter={"analysis_id": victim.id}), "created it")
    refused(lambda: core.find_analysis_bucket_files(filter={"analysis_id": victim.id}), "created")


def test_another_researcher_cannot_download_the_code(sandbox, mallory, victim):
    _, storage = mallory
    bucket = code_bucket_id(sandbox, str(victim.id))
    refused(lambda: storage.get_bucket(bucket), "created it")
    refused(lambda: b"".join(storage.stream_bucket_tarball(bucket)), "created it")
    refused(lambda: storage.find_bucket_files(filter={"bucket_id": bucket}), "created it")
    file_id = sandbox.storage.find_bucket_files(filter={"bucket_id": bucket})[0].id
    refused(lambda: b"".join(storage.stream_bucket_file(file_id)), "created it")
    assert all(str(b.id) != bucket for b in storage.get_buckets())


def test_another_researcher_cannot_delete_unlock_or_comment(sandbox, mallory, victim):
    core, storage = mallory
    refused(lambda: core.delete_analysis(victim.id), "only the researcher who created")
    refused(lambda: core.send_analysis_command(victim.id, "configurationUnlock"), "created")
    link = sandbox.core.find_analysis_nodes(filter={"analysis_id": victim.id})[0]
    refused(lambda: core.update_analysis_node(link.id, comment="rejected: fake"), "created")
    refused(lambda: core.update_analysis(victim.id, name="renamed"), "created")
    refused(lambda: core.delete_analysis_node(link.id), "created")
    bucket = code_bucket_id(sandbox, str(victim.id))
    refused(lambda: storage.upload_to_bucket(bucket, {"file_name": "x.py", "content": b"1"}))
    refused(lambda: core.delete_analysis_logs(victim.id), "created")
    after = sandbox.core.get_analysis(victim.id)
    assert after.configuration_locked and after.name == victim.name
    assert sandbox.core.get_analysis_node(link.id).comment is None


def test_another_researcher_cannot_follow_the_analysis_changes(sandbox, mallory, victim):
    core, _ = mallory
    core.get_master_images()
    token = core._client.auth._current_token.access_token
    import httpx2

    with httpx2.Client(base_url=sandbox.url) as http:
        r = http.get(
            f"/core/analyses/{victim.id}/changes", headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 403 and "created analysis" in r.json()["message"]


def test_the_admin_sees_and_changes_every_analysis(sandbox, admin):
    core, _ = admin
    theirs = sandbox.core.create_analysis(sandbox.project_id, name="for-the-admin")
    assert core.get_analysis(theirs.id).id == theirs.id
    assert str(theirs.id) in {str(a.id) for a in core.get_analyses()}
    core.delete_analysis(theirs.id)
    assert sandbox.core.get_analysis(theirs.id) is None


# -- nodes --------------------------------------------------------------------------------------
def test_a_node_cannot_rewrite_another_nodes_record(sandbox):
    attacker = sandbox.nodes["uk-koeln"].core
    target = sandbox.nodes["uk-aachen"].node
    before = sandbox.core.get_node(target.id)
    refused(lambda: attacker.update_node(target.id, public_key="forged"), "node's own robot")
    refused(lambda: attacker.update_node(target.id, node_type="aggregator"), "own robot")
    assert sandbox.core.get_node(target.id).public_key == before.public_key


def test_a_node_changes_only_its_own_public_key(sandbox):
    own = sandbox.nodes["uk-koeln"]
    before = own.core.get_node(own.node.id).public_key
    refused(lambda: own.core.update_node(own.node.id, node_type="aggregator"), "only an admin")
    assert own.core.update_node(own.node.id, public_key=before).public_key == before


def test_a_researcher_cannot_rewrite_node_records(sandbox):
    target = sandbox.nodes["uk-aachen"].node
    refused(lambda: sandbox.core.update_node(target.id, public_key="forged"), "or an admin")
    refused(lambda: sandbox.core.create_node("rogue", None), "only an admin")


def test_the_admin_may_change_a_node_record(sandbox, admin):
    core, _ = admin
    target = sandbox.nodes["uk-aachen"].node
    node = core.update_node(target.id, external_name="aachen-renamed")
    assert node.external_name == "aachen-renamed"
    core.update_node(target.id, external_name=target.name)


def test_a_node_outside_an_analysis_cannot_read_it(sandbox, victim):
    # the aggregator and the sites take part; a node created later does not
    outsider = sandbox.nodes["uk-koeln"]
    link = sandbox.core.find_analysis_nodes(
        filter={"analysis_id": victim.id, "node_id": outsider.node.id}
    )
    sandbox.core.send_analysis_command(victim.id, "configurationUnlock")
    sandbox.core.delete_analysis_node(link[0].id)
    refused(lambda: outsider.core.get_analysis(victim.id), "analysis's nodes")
    assert str(victim.id) not in {str(a.id) for a in outsider.core.get_analyses()}


def test_project_membership_is_approved_by_the_node_or_an_admin(sandbox, admin):
    core, _ = admin
    project = sandbox.core.create_project("membership-test")
    node = sandbox.nodes["uk-aachen"]
    pn = sandbox.core.create_project_node(project.id, node.node.id)
    refused(
        lambda: sandbox.core.update_project_node(pn.id, approval_status="approved"),
        "only the node itself or an admin",
    )
    assert core.update_project_node(pn.id, approval_status="approved").approval_status == (
        "approved"
    )


def test_another_researcher_cannot_change_a_project_they_did_not_create(sandbox, mallory):
    core, _ = mallory
    node = sandbox.nodes["uk-koeln"].node
    refused(lambda: core.create_project_node(sandbox.project_id, node.id), "creator of project")
    refused(lambda: core.update_project(sandbox.project_id, name="hijacked"), "creator")
    refused(lambda: core.delete_project(sandbox.project_id), "creator of project")
