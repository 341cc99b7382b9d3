"""Every endpoint of /flame-lab/api/, through a real Jupyter server (jp_fetch)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flame_lab import __version__, config
from flame_lab.federation import TERMINAL
from flame_lab.sandbox import daemon
from flame_lab.server.handlers import MANAGER_SETTING
from tests.server.conftest import ANALYSIS_CELL, PASSPHRASE, notebook

SUMMARY_KEYS = {"id", "name", "createdAt", "status", "progress", "nodes", "waiting"}
NODE_STATE_KEYS = {"nodeId", "nodeName", "type", "approval", "execution", "progress", "comment"}
DETAIL_KEYS = SUMMARY_KEYS | {"bundleHash", "hubUrl", "failure", "resultAvailable"}
EXECUTION_SECONDS = 90.0


def assert_error(body: dict[str, Any], name: str) -> None:
    """Every error body is {error, message, hint}, with something to do next."""
    assert set(body) == {"error", "message", "hint"}, body
    assert body["error"] == name, body
    assert body["message"] and body["hint"], body


# -- without a federation -------------------------------------------------------------------
async def test_version_names_the_package_and_the_api_number(api):
    assert await api.get("version") == (200, {"version": __version__, "api": 1})


async def test_status_of_a_stopped_sandbox_is_unreachable_with_a_hint(api, flame_config):
    code, body = await api.get("status")
    assert code == 200
    assert body["federation"] == {"name": "sandbox", "kind": "sandbox", "coreUrl": ""}
    assert body["reachable"] is False
    assert "not running" in body["error"]["message"] and body["error"]["hint"]
    assert body["versions"]["flameLab"] == __version__ and body["versions"]["flameHubClient"]
    assert not daemon.running(flame_config["sandbox_home"])  # asking never starts it


async def test_status_without_an_identity_says_how_to_create_one(api):
    code, body = await api.get("status")
    assert code == 200 and body["keyId"] is None
    assert body["keyFile"] == str(config.identity_file())
    assert "flame-lab keys init" in body["keyHint"]


async def test_status_names_the_key_id_read_without_a_passphrase(api, identity_file, monkeypatch):
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(identity_file))
    code, body = await api.get("status")
    assert code == 200 and len(body["keyId"]) == 32 and body["keyHint"] is None


async def test_nodes_of_a_stopped_sandbox_without_autostart_is_503_with_a_hint(api):
    code, body = await api.get("nodes")
    assert code == 503
    assert_error(body, "SandboxError")


async def test_unknown_analysis_is_404(api):
    code, body = await api.get("analyses/no-such-analysis")
    assert code == 404
    assert_error(body, "NotFound")


async def test_notebook_without_flame_cells_is_400_with_a_hint(api):
    nb = notebook("import pandas as pd\nprint(1)", "# %%flame is only mentioned here")
    code, body = await api.post("analyses", {"notebook": nb})
    assert code == 400
    assert_error(body, "DraftError")
    assert "%%flame" in body["hint"]


async def test_markdown_cells_do_not_count_as_flame_cells(api):
    code, body = await api.post("analyses", {"notebook": notebook(ANALYSIS_CELL, kind="markdown")})
    assert code == 400 and body["error"] == "DraftError"


async def test_flame_cell_with_a_syntax_error_is_400_naming_the_cell(api, researcher):
    code, body = await api.post("analyses", {"notebook": notebook("%%flame\ndef broken(:\n")})
    assert code == 400
    assert_error(body, "DraftError")
    assert "cell 1" in body["message"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not json at all", "BadRequest"),
        ([1, 2], "BadRequest"),
        ({"notebook": {"cells": []}, "nodes": "uk-aachen"}, "BadRequest"),
        ({"notebook": {"cells": []}, "name": 7}, "BadRequest"),
        ({"nodes": ["uk-aachen"]}, "DraftError"),
        ({"notebook": "{not a notebook"}, "DraftError"),
    ],
)
async def test_malformed_submissions_are_400(api, body, error):
    raw = body if isinstance(body, str) else json.dumps(body)
    response = await api.fetch(
        "flame-lab", "api", "analyses", method="POST", body=raw, raise_error=False
    )
    assert response.code == 400
    assert_error(json.loads(response.body), error)


async def test_a_locked_key_without_a_passphrase_is_409(api, identity_file, monkeypatch):
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(identity_file))  # and no FLAME_LAB_PASSPHRASE
    code, body = await api.post("analyses", {"notebook": notebook(ANALYSIS_CELL)})
    assert code == 409
    assert_error(body, "PassphraseRequired")


async def test_no_identity_at_all_is_400_saying_how_to_create_one(api):
    code, body = await api.post("analyses", {"notebook": notebook(ANALYSIS_CELL)})
    assert code == 400
    assert_error(body, "KeyFileMissing")
    assert "keys init" in body["hint"]


async def test_a_wrong_passphrase_is_refused_and_not_echoed(api, identity_file, monkeypatch):
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(identity_file))
    wrong = "not-the-passphrase-0451"
    code, body = await api.post(
        "analyses", {"notebook": notebook(ANALYSIS_CELL), "passphrase": wrong}
    )
    assert code == 400
    assert_error(body, "WrongPassphrase")
    assert wrong not in json.dumps(body)


# -- a hub that does not answer ---------------------------------------------------------------
@pytest.mark.federation("hub")
async def test_status_of_an_unreachable_hub_says_so_with_a_hint(api, flame_config):
    code, body = await api.get("status")
    assert code == 200 and body["reachable"] is False
    assert body["federation"]["kind"] == "hub"
    assert body["federation"]["coreUrl"] == flame_config["core_url"]
    assert "cannot reach the hub" in body["error"]["message"] and body["error"]["hint"]


@pytest.mark.federation("hub")
async def test_nodes_of_an_unreachable_hub_is_503(api):
    code, body = await api.get("nodes")
    assert code == 503
    assert_error(body, "HubUnreachable")


@pytest.mark.federation("hub")
async def test_sandbox_start_on_a_hub_configured_server_is_refused(api):
    code, body = await api.post("sandbox/start")
    assert code == 503
    assert_error(body, "SandboxError")


# -- against a running sandbox --------------------------------------------------------------
@pytest.mark.federation("sandbox")
async def test_status_of_a_running_sandbox_is_reachable(api, sandbox_home, researcher):
    code, body = await api.get("status")
    assert code == 200 and body["reachable"] is True and body["error"] is None
    assert body["federation"]["coreUrl"] == daemon.status(sandbox_home)["coreUrl"]
    assert body["keyId"] and body["keyHint"] is None


@pytest.mark.federation("sandbox")
async def test_nodes_lists_the_sandbox_nodes_in_camel_case(api, sandbox_home):
    code, body = await api.get("nodes")
    assert code == 200
    names = {n["name"]: n for n in body["nodes"]}
    assert set(names) == {"uk-aachen", "uk-koeln", "aggregator"}
    assert names["aggregator"]["type"] == "aggregator" and names["uk-koeln"]["type"] == "default"
    assert all(set(n) == {"id", "name", "type", "online"} for n in body["nodes"])


@pytest.mark.federation("sandbox")
async def test_datasets_give_each_data_nodes_description_for_the_panel(api, sandbox_home):
    code, body = await api.get("datasets")
    assert code == 200 and body["missing"] == []
    nodes = {d["node"]: d for d in body["nodes"]}
    assert set(nodes) == {"uk-aachen", "uk-koeln"}
    table = nodes["uk-koeln"]["tables"][0]
    assert table["name"] == "patients.csv" and "-" in table["records"]
    age = {c["name"]: c for c in table["columns"]}["age"]
    assert age["type"] == "integer" and age["unit"] == "a" and " to " in age["values"]
    assert "ICD-10-GM" in nodes["uk-koeln"]["codeSystems"]
    assert "records behind a result" in nodes["uk-koeln"]["policy"]


@pytest.mark.federation("sandbox")
async def test_submitting_to_an_unknown_node_is_404_listing_the_known_ones(
    api, sandbox_home, researcher
):
    code, body = await api.post(
        "analyses", {"notebook": notebook(ANALYSIS_CELL), "nodes": ["uk-nowhere"]}
    )
    assert code == 404
    assert_error(body, "NotFound")


@pytest.mark.federation("sandbox")
async def test_the_master_image_is_chosen_or_refused_before_anything_is_created(
    api, sandbox_home, researcher
):
    nb = notebook("%%flame\nimport numpy\n" + ANALYSIS_CELL.partition("\n")[2])
    code, body = await api.post("analyses", {"notebook": nb, "masterImage": "python/base"})
    assert code == 400 and body["error"] == "ImageError", body
    assert "lacks numpy" in body["message"] and "python/ml" in body["hint"]
    code, body = await api.post("analyses", {"notebook": nb, "masterImage": "python/nope"})
    assert code == 400 and "python/nope" in body["message"]
    code, body = await api.post("analyses", {"notebook": nb, "sealed": "yes"})
    assert code == 400 and "`sealed`" in body["message"]
    code, listing = await api.get("analyses")
    assert code == 200 and listing["analyses"] == []
    code, body = await api.post("analyses", {"notebook": nb, "masterImage": "python/ml"})
    assert code == 201, body
    assert body["provenance"]["masterImage"] == "python/ml"
    code, _ = await api.post(f"analyses/{body['analysis']['id']}/cancel")
    assert code == 202


async def _wait_until_done(api, analysis_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + EXECUTION_SECONDS
    while True:
        code, detail = await api.get(f"analyses/{analysis_id}")
        assert code == 200, detail
        if detail["status"] in TERMINAL:
            return detail
        assert time.monotonic() < deadline, f"still {detail['status']}: {detail['nodes']}"
        await asyncio.sleep(0.25)


@pytest.mark.federation("sandbox")
async def test_a_notebook_is_submitted_end_to_end_and_followed(api, sandbox_home, researcher):
    nb = notebook("import statistics", ANALYSIS_CELL, "print('not sent')")
    code, body = await api.post("analyses", {"notebook": nb, "name": "count patients"})
    assert code == 201, body
    summary, provenance = body["analysis"], body["provenance"]
    assert set(summary) == SUMMARY_KEYS and summary["name"] == "count patients"
    assert {n["nodeName"] for n in summary["nodes"]} == {"uk-aachen", "uk-koeln", "aggregator"}
    assert all(set(n) == NODE_STATE_KEYS for n in summary["nodes"])
    assert provenance["analysisId"] == summary["id"]
    assert provenance["nodes"] == ["aggregator", "uk-aachen", "uk-koeln"]
    assert len(provenance["bundleHash"]) == 64 and provenance["submittedAt"]
    assert provenance["hubUrl"] == daemon.status(sandbox_home)["coreUrl"]
    assert provenance["masterImage"] == "python/base" and not provenance["sealedByAnalysis"]

    code, listing = await api.get("analyses")
    assert code == 200 and [a["id"] for a in listing["analyses"]] == [summary["id"]]
    assert set(listing["analyses"][0]) == SUMMARY_KEYS

    detail = await _wait_until_done(api, summary["id"])
    assert set(detail) == DETAIL_KEYS
    assert detail["bundleHash"] == provenance["bundleHash"]
    assert detail["status"] == "executed", detail
    assert detail["progress"] == 100 and detail["failure"] is None
    assert detail["resultAvailable"] is True  # a flag: the result itself opens in the kernel

    code, logs = await api.get(f"analyses/{summary['id']}/logs")
    assert code == 200 and logs["logs"]
    assert all(set(line) == {"time", "nodeName", "level", "message"} for line in logs["logs"])
    assert all(line["time"][:4].isdigit() and "T" in line["time"] for line in logs["logs"])
    code, one = await api.get(f"analyses/{summary['id']}/logs", node="uk-koeln", level="info")
    assert code == 200 and one["logs"]
    assert {line["nodeName"] for line in one["logs"]} == {"uk-koeln"}
    assert {line["level"] for line in one["logs"]} <= {
        "emerg",
        "alert",
        "crit",
        "error",
        "warn",
        "notice",
        "info",
    }


@pytest.mark.federation("sandbox")
async def test_logs_with_an_unknown_level_are_400_with_the_levels_as_hint(
    api, sandbox_home, researcher
):
    code, body = await api.post("analyses", {"notebook": notebook(ANALYSIS_CELL)})
    assert code == 201
    code, body = await api.get(f"analyses/{body['analysis']['id']}/logs", level="loud")
    assert code == 400
    assert_error(body, "FlameLabError")
    assert "debug" in body["hint"]


@pytest.mark.federation("sandbox")
async def test_cancel_answers_202_with_the_cancelled_analysis(api, sandbox_home, researcher):
    code, body = await api.post("analyses", {"notebook": notebook(ANALYSIS_CELL)})
    assert code == 201
    analysis_id = body["analysis"]["id"]
    code, body = await api.post(f"analyses/{analysis_id}/cancel")
    assert code == 202 and body["analysis"]["id"] == analysis_id
    assert body["analysis"]["status"] == "cancelled"
    code, detail = await api.get(f"analyses/{analysis_id}")
    assert code == 200 and detail["status"] == "cancelled"


@pytest.mark.federation("sandbox")
async def test_a_passphrase_sent_with_a_submission_is_used_once_and_never_kept(
    api, sandbox_home, identity_file, monkeypatch, caplog, jp_logging_stream, tmp_path
):
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(identity_file))  # no FLAME_LAB_PASSPHRASE
    caplog.set_level(logging.DEBUG)
    code, body = await api.post(
        "analyses", {"notebook": notebook(ANALYSIS_CELL), "passphrase": PASSPHRASE}
    )
    assert code == 201, body
    answers = [json.dumps(body)]
    answers.append(json.dumps((await api.get("analyses"))[1]))
    answers.append(json.dumps((await api.get(f"analyses/{body['analysis']['id']}"))[1]))
    answers.append(json.dumps((await api.get("status"))[1]))
    assert not any(PASSPHRASE in text for text in answers)
    assert caplog.records and PASSPHRASE not in caplog.text
    assert PASSPHRASE not in jp_logging_stream.getvalue()
    for path in [*tmp_path.rglob("*"), *sandbox_home.rglob("*")]:
        if path.is_file():
            assert PASSPHRASE.encode() not in path.read_bytes(), path
    # the next submission without it is asked for it again: nothing was cached
    code, body = await api.post("analyses", {"notebook": notebook(ANALYSIS_CELL)})
    assert code == 409 and body["error"] == "PassphraseRequired"


# -- starting and stopping a sandbox ---------------------------------------------------------
@pytest.mark.federation("fresh")
async def test_sandbox_start_and_stop_answer_202_with_the_new_status(api, flame_config):
    home = Path(flame_config["sandbox_home"])
    code, body = await api.get("status")  # asking never starts it, even with autostart on
    assert code == 200 and body["reachable"] is False and daemon.running(home) is None
    try:
        code, body = await api.post("sandbox/start")
        assert code == 202, body
        assert body["status"]["reachable"] is True
        assert body["status"]["federation"]["coreUrl"] == daemon.status(home)["coreUrl"]
        code, nodes = await api.get("nodes")
        assert code == 200 and len(nodes["nodes"]) == 3
        code, body = await api.post("sandbox/stop")
        assert code == 202 and body["status"]["reachable"] is False
        assert daemon.running(home) is None
        code, body = await api.get("nodes")  # autostart must not undo the user's stop
        assert code == 503 and body["error"] == "SandboxError"
        assert daemon.running(home) is None
    finally:
        daemon.down(home)


async def test_a_slow_federation_call_does_not_block_the_server(api, jp_serverapp):
    """Blocking federation work runs in the manager's threads, never on Jupyter's IO loop."""
    manager = jp_serverapp.web_app.settings[MANAGER_SETTING]
    release = threading.Event()
    entered = threading.Event()

    def slow_nodes() -> dict[str, Any]:
        entered.set()
        assert release.wait(timeout=30), "the test never released the slow call"
        return {"nodes": []}

    manager._nodes = slow_nodes
    pending = asyncio.ensure_future(api.get("nodes"))
    try:
        while not entered.is_set():
            assert not pending.done(), pending.result()
            await asyncio.sleep(0.01)
        assert await api.get("version") == (200, {"version": __version__, "api": 1})
        assert not pending.done()
    finally:
        release.set()
    assert await pending == (200, {"nodes": []})
