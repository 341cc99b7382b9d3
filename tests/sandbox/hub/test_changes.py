"""The node agents' change feed: a wait ends when one of the node's analyses changes for it."""

from __future__ import annotations

import threading

import httpx2
import pytest

from tests.sandbox.hub.conftest import Sandbox, approve_all, build, ready_analysis, wait_for
from tests.sandbox.hub.test_messages import node_http


def changes(http: httpx2.Client, node_id: str, **params: str) -> httpx2.Response:
    return http.get(f"/nodes/{node_id}/changes", params=params, timeout=30)


def version_now(http: httpx2.Client, node_id: str) -> int:
    return changes(http, node_id).json()["data"]["version"]


def wait_in_background(
    http: httpx2.Client, node_id: str, after: int
) -> tuple[threading.Thread, list]:
    answers: list[httpx2.Response] = []
    thread = threading.Thread(
        target=lambda: answers.append(changes(http, node_id, after=str(after), wait="5"))
    )
    thread.start()
    return thread, answers


def test_a_new_analysis_wakes_its_nodes_waiting_for_changes(sandbox: Sandbox) -> None:
    koeln = sandbox.node_id("uk-koeln")
    with node_http(sandbox, "uk-koeln") as http:
        before = version_now(http, koeln)
        thread, answers = wait_in_background(http, koeln, before)
        wait_for(lambda: sandbox.hub.node_bells.waiting(koeln), "the agent's wait")
        ready_analysis(sandbox, "wakes", lock=False)  # adds every node of the project
        thread.join(10)
    assert not thread.is_alive() and answers[0].json()["data"]["version"] > before


def test_the_lock_and_the_distribution_ring_and_other_edits_do_not(sandbox: Sandbox) -> None:
    aachen = sandbox.node_id("uk-aachen")
    analysis = ready_analysis(sandbox, "lock", lock=False)
    with node_http(sandbox, "uk-aachen") as http:
        before = version_now(http, aachen)
        sandbox.core.update_analysis(analysis.id, name="renamed while configuring")
        assert version_now(http, aachen) == before
        sandbox.core.send_analysis_command(analysis.id, "configurationLock")
        locked = version_now(http, aachen)
        approve_all(sandbox, analysis.id)
        approved = version_now(http, aachen)
        build(sandbox, analysis.id)
        sandbox.core.send_analysis_command(analysis.id, "distributionStart")
        distributed = version_now(http, aachen)
        mine = sandbox.nodes["uk-aachen"].core.find_analysis_nodes(
            filter={"analysis_id": analysis.id, "node_id": aachen}
        )[0]
        sandbox.nodes["uk-aachen"].core.update_analysis_node(
            mine.id, execution_status="started", execution_progress=10
        )
        reported = version_now(http, aachen)
    assert before < locked < approved < distributed
    assert reported == distributed, "a node's own progress report does not wake it"


def test_an_answer_comes_at_once_when_the_version_moved_on(sandbox: Sandbox) -> None:
    aggregator = sandbox.node_id("aggregator")
    with node_http(sandbox, "aggregator") as http:
        now = version_now(http, aggregator)
        behind = changes(http, aggregator, after=str(max(now - 1, 0)) if now else "7", wait="5")
    assert behind.json()["data"]["version"] == now
    assert sandbox.hub.node_bells.waiting(aggregator) == 0


def test_a_quiet_wait_ends_with_the_same_version(sandbox: Sandbox) -> None:
    koeln = sandbox.node_id("uk-koeln")
    with node_http(sandbox, "uk-koeln") as http:
        now = version_now(http, koeln)
        quiet = changes(http, koeln, after=str(now), wait="0.1")
    assert quiet.status_code == 200 and quiet.json()["data"]["version"] == now


def test_only_the_node_itself_follows_its_changes(sandbox: Sandbox) -> None:
    koeln = sandbox.node_id("uk-koeln")
    with node_http(sandbox, "uk-aachen") as other:
        assert changes(other, koeln, wait="5").status_code == 403
    sandbox.core.get_master_images()
    token = sandbox.core._client.auth._current_token.access_token
    with httpx2.Client(
        base_url=f"{sandbox.url}/core", headers={"Authorization": f"Bearer {token}"}
    ) as researcher:
        assert changes(researcher, koeln).status_code == 403
    with httpx2.Client(base_url=f"{sandbox.url}/core") as anonymous:
        assert changes(anonymous, koeln).status_code == 401
    assert sandbox.hub.node_bells.waiting(koeln) == 0


@pytest.mark.parametrize(
    "params", [{"after": "-1"}, {"after": "v2"}, {"wait": "6"}, {"since": "1"}]
)
def test_bad_arguments_are_refused_with_their_name(sandbox: Sandbox, params: dict) -> None:
    koeln = sandbox.node_id("uk-koeln")
    with node_http(sandbox, "uk-koeln") as http:
        r = changes(http, koeln, **params)
    assert r.status_code == 400 and next(iter(params)) in r.json()["message"]


def researcher_http(sandbox: Sandbox) -> httpx2.Client:
    sandbox.core.get_master_images()
    token = sandbox.core._client.auth._current_token.access_token
    return httpx2.Client(
        base_url=f"{sandbox.url}/core", headers={"Authorization": f"Bearer {token}"}
    )


def analysis_changes(http: httpx2.Client, analysis_id, **params: str) -> httpx2.Response:
    return http.get(f"/analyses/{analysis_id}/changes", params=params, timeout=30)


def test_the_researcher_hears_of_a_node_approving_while_waiting(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "followed")
    answers: list[httpx2.Response] = []
    with researcher_http(sandbox) as http:
        before = analysis_changes(http, analysis.id).json()["data"]["version"]
        thread = threading.Thread(
            target=lambda: answers.append(
                analysis_changes(http, analysis.id, after=str(before), wait="5")
            )
        )
        thread.start()
        wait_for(lambda: sandbox.hub.analysis_bells.waiting(str(analysis.id)), "the wait")
        approve_all(sandbox, analysis.id)
        thread.join(10)
    assert not thread.is_alive() and answers[0].json()["data"]["version"] > before


def test_nodes_and_strangers_cannot_follow_an_analysis(sandbox: Sandbox) -> None:
    analysis = ready_analysis(sandbox, "private")
    with node_http(sandbox, "uk-koeln") as node:
        assert analysis_changes(node, analysis.id).status_code == 403
    with researcher_http(sandbox) as http:
        missing = analysis_changes(http, "00000000-0000-4000-8000-000000000000", wait="5")
    assert missing.status_code == 404
    assert sandbox.hub.analysis_bells.waiting(str(analysis.id)) == 0
