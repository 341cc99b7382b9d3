"""A real JupyterHub with deploy/jupyterhub/jupyterhub_config.py, logging two researchers in
through the sandbox's OAuth2 login (GenericOAuthenticator), as on a production FLAME hub.

Proves, in one hub run: the production login path works end to end; each user's server has
flame_lab enabled, pointed at the FLAME URLs, and reaches the hub with the token from that
user's auth_state (nobody typed one: no FLAME_LAB_HUB_TOKEN anywhere); users keep apart keys
and analyses; one submission through the server extension runs to ``executed``.
Needs configurable-http-proxy: ``npm ci --prefix deploy/jupyterhub``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from flame_lab.sandbox import daemon
from flame_lab.sandbox.hub.auth import add_oauth_client, add_researcher
from flame_lab.sandbox.hub.store import Store
from flame_lab.security.keys import Identity, save_identity
from tests.deploy.browser import fill_login_form, wait_for
from tests.deploy.hubprocess import (
    DEPLOY,
    free_port,
    machine_config,
    running_jupyterhub,
    tail,
    wait_for_server,
)

PASSPHRASE = "a passphrase only the researcher knows"
USERS = ("alice", "bob")
RUN_SECONDS = 120
ANALYSIS = """%%flame
from flame.star import StarAnalyzer, StarAggregator, StarModel


class Count(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        return data[0]["Patient?_summary=count"]["total"]


class Total(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return sum(analysis_results)

    def has_converged(self, result, last_result):
        return True


StarModel(analyzer=Count, aggregator=Total, data_type="fhir",
          query="Patient?_summary=count", simple_analysis=True, output_type="str")
"""


def notebook(*sources: str) -> dict:
    cells = [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for s in sources
    ]
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


@dataclass
class Researcher:
    name: str
    password: str
    key_id: str
    home: Path
    browser: requests.Session = field(default_factory=requests.Session)


@dataclass
class GroupHub:
    url: str
    sandbox: Path
    log: Path
    users: dict[str, Researcher]

    def api(self, user: str, path: str) -> str:
        return f"{self.url}/user/{user}/flame-lab/api/{path}"

    def log_tail(self) -> str:
        return tail(self.log)


def _provision(sandbox: Path, homes: Path, callback: str) -> tuple[dict[str, Researcher], str, str]:
    """Sandbox accounts for two researchers and JupyterHub's OAuth client; keys in their homes,
    trusted by every node (what each node's admin does for a researcher of the group)."""
    daemon.initialise(sandbox, 3)
    store = Store(sandbox)
    try:
        passwords = {name: add_researcher(store, name) for name in USERS}
        client = add_oauth_client(store, "jupyterhub", callback)
    finally:
        store.close()
    users = {}
    for name in USERS:
        identity = Identity.generate()
        home = homes / name / ".flame-lab"
        save_identity(home / "keys" / "identity.json", identity, PASSPHRASE)
        for node in (sandbox / "nodes").iterdir():
            trusted = node / "trusted" / f"{identity.key_id}.json"
            trusted.write_text(json.dumps(identity.public.to_dict()), encoding="utf-8")
        users[name] = Researcher(name, passwords[name], identity.key_id, home)
    return users, client.client_id, client.client_secret


def _test_config(tmp: Path, port: int, homes: Path) -> Path:
    """The group config as shipped, plus the test machine's part; all servers run as this
    user, so each gets its own FLAME_LAB_HOME (keys, records) in its own home."""
    config = tmp / "test_config.py"
    config.write_text(
        f"load_subconfig({str(DEPLOY / 'jupyterhub_config.py')!r})\n"
        + machine_config(tmp, port, homes)
        + 'c.Spawner.environment["FLAME_LAB_HOME"] = '
        + 'lambda spawner: spawner.home_dir + "/.flame-lab"\n',
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def group_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GroupHub]:
    tmp = tmp_path_factory.mktemp("jupyterhub")
    sandbox, homes = tmp / "sandbox", tmp / "homes"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = _test_config(tmp, port, homes)
    users, client_id, client_secret = _provision(sandbox, homes, f"{url}/hub/oauth_callback")
    running = daemon.up(sandbox)
    env = {
        **os.environ,
        "FLAME_HUB_URL": running.url,
        "FLAME_PROJECT": "sandbox",
        "OAUTH_CLIENT_ID": client_id,
        "OAUTH_CLIENT_SECRET": client_secret,
        "OAUTH_CALLBACK_URL": f"{url}/hub/oauth_callback",
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
    }
    env.pop("FLAME_LAB_HUB_TOKEN", None)
    group = GroupHub(url, sandbox, tmp / "jupyterhub.log", users)
    try:
        with running_jupyterhub(config, env, url, group.log):
            yield group
    finally:
        daemon.down(sandbox)


@pytest.fixture(scope="module")
def logged_in(group_hub: GroupHub) -> GroupHub:
    """Both researchers log in through FLAME's login form and start their servers."""
    for user in group_hub.users.values():
        page = user.browser.get(f"{group_hub.url}/hub/oauth_login", timeout=30)
        assert "/auth/authorize" in page.url and page.status_code == 200, page.text[:500]
        landed = fill_login_form(user.browser, page, user.name, user.password)
        assert landed.url.startswith(group_hub.url), landed.url
        assert user.browser.cookies.get("jupyterhub-session-id"), group_hub.log_tail()
        user.browser.get(f"{group_hub.url}/hub/spawn/{user.name}", timeout=30)
    for user in group_hub.users.values():
        wait_for_server(user.browser, group_hub.url, user.name, group_hub.log)
    return group_hub


def post_json(user: Researcher, url: str, body: dict) -> requests.Response:
    """A browser POST to the user's server: Jupyter's XSRF cookie echoed in the header."""
    xsrf = user.browser.cookies.get("_xsrf", path=f"/user/{user.name}/")
    return user.browser.post(
        url, data=json.dumps(body), headers={"X-XSRFToken": xsrf or ""}, timeout=120
    )


def test_a_researcher_logs_in_with_the_flame_password_form(logged_in: GroupHub) -> None:
    """Proves the authorization-code login: JupyterHub knows each user by their FLAME name."""
    for user in logged_in.users.values():
        me = user.browser.get(f"{logged_in.url}/hub/api/user", timeout=30)
        assert me.status_code == 200 and me.json()["name"] == user.name


def test_each_server_reaches_flame_with_the_token_from_its_users_auth_state(
    logged_in: GroupHub,
) -> None:
    """Proves hubtoken: servers have no token in their environment, yet the hub answers."""
    for user in logged_in.users.values():
        status = user.browser.get(logged_in.api(user.name, "status"), timeout=30).json()
        assert status["federation"]["kind"] == "hub", status
        assert status["federation"]["coreUrl"].endswith("/core")
        assert status["reachable"] is True, status["error"]
        assert status["keyId"] == user.key_id  # each server sees its own user's key only


def test_a_researcher_cannot_use_another_researchers_server(logged_in: GroupHub) -> None:
    """Proves JupyterHub's per-user access: bob's login does not open alice's API."""
    bob = logged_in.users["bob"]
    r = bob.browser.get(logged_in.api("alice", "status"), timeout=30, allow_redirects=True)
    assert r.status_code == 403 or not r.headers.get("Content-Type", "").startswith(
        "application/json"
    )


def test_a_submission_through_the_server_extension_runs_and_stays_private(
    logged_in: GroupHub,
) -> None:
    """Proves the whole production path: alice submits from her server with the token from
    her login, the nodes run it to executed; bob's server does not list or open it."""
    alice, bob = logged_in.users["alice"], logged_in.users["bob"]
    r = post_json(
        alice,
        logged_in.api("alice", "analyses"),
        {"notebook": notebook(ANALYSIS), "name": "count patients", "passphrase": PASSPHRASE},
    )
    assert r.status_code == 201, r.text
    analysis_id = r.json()["analysis"]["id"]

    def finished() -> dict | None:
        detail = alice.browser.get(logged_in.api("alice", f"analyses/{analysis_id}"), timeout=60)
        assert detail.status_code == 200, detail.text
        body = detail.json()
        return body if body["status"] in ("executed", "failed", "rejected", "cancelled") else None

    detail = wait_for("the analysis finishing", finished, RUN_SECONDS)
    assert detail["status"] == "executed", detail

    mine = alice.browser.get(logged_in.api("alice", "analyses"), timeout=60).json()
    theirs = bob.browser.get(logged_in.api("bob", "analyses"), timeout=60).json()
    assert [a["id"] for a in mine["analyses"]] == [analysis_id]
    assert theirs["analyses"] == []
    hidden = bob.browser.get(logged_in.api("bob", f"analyses/{analysis_id}"), timeout=60)
    assert hidden.status_code == 404
