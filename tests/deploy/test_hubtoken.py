"""flame_lab.server.hubtoken and its use by the server's FederationManager: the FLAME token
comes from the user's JupyterHub auth_state, asked afresh on each connect."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flame_lab.errors import HubAuthError
from flame_lab.server import hubtoken
from flame_lab.server.hubtoken import JupyterHubAccess, fetch_access_token, hub_token
from flame_lab.server.manager import FederationManager, ServerSettings

API_TOKEN = "server-api-token-0123456789"


@dataclass
class FakeHubApi:
    """JupyterHub's ``GET /hub/api/users/:name`` as the test scripts it; records requests."""

    status: int = 200
    model: dict = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def hub_api() -> Iterator[FakeHubApi]:
    fake = FakeHubApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.seen.append((self.path, self.headers.get("Authorization", "")))
            body = json.dumps(fake.model).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/hub/api"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def env_for(api: FakeHubApi, user: str = "alice") -> dict[str, str]:
    return {
        "JUPYTERHUB_API_URL": api.url,
        "JUPYTERHUB_API_TOKEN": API_TOKEN,
        "JUPYTERHUB_USER": user,
    }


def test_outside_jupyterhub_there_is_no_hub_token() -> None:
    assert hub_token({}) is None
    assert JupyterHubAccess.from_env({"JUPYTERHUB_API_URL": "http://x"}) is None


def test_the_token_comes_from_the_users_auth_state_asked_with_the_servers_api_token(
    hub_api: FakeHubApi,
) -> None:
    hub_api.model = {"name": "alice", "auth_state": {"access_token": "flame-access-1"}}
    assert hub_token(env_for(hub_api, "alice@uni")) == "flame-access-1"
    path, header = hub_api.seen[0]
    assert path == "/hub/api/users/alice%40uni" and header == f"token {API_TOKEN}"


def test_each_call_asks_the_hub_again_so_a_refreshed_token_is_picked_up(
    hub_api: FakeHubApi,
) -> None:
    access = JupyterHubAccess.from_env(env_for(hub_api))
    hub_api.model = {"name": "alice", "auth_state": {"access_token": "old"}}
    assert fetch_access_token(access) == "old"
    hub_api.model = {"name": "alice", "auth_state": {"access_token": "renewed"}}
    assert fetch_access_token(access) == "renewed"


def test_a_hub_that_refuses_says_which_scopes_the_admin_must_grant(hub_api: FakeHubApi) -> None:
    hub_api.status = 403
    with pytest.raises(HubAuthError) as exc:
        hub_token(env_for(hub_api))
    assert "admin:auth_state!user" in exc.value.hint and "403" in exc.value.message


def test_a_model_without_auth_state_means_the_scope_is_missing(hub_api: FakeHubApi) -> None:
    hub_api.model = {"name": "alice"}
    with pytest.raises(HubAuthError) as exc:
        hub_token(env_for(hub_api))
    assert "enable_auth_state" in exc.value.hint


def test_a_login_without_tokens_gives_none(hub_api: FakeHubApi) -> None:
    hub_api.model = {"name": "alice", "auth_state": None}
    assert hub_token(env_for(hub_api)) is None


def test_an_unreachable_hub_is_a_flame_lab_error() -> None:
    env = {"JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api", "JUPYTERHUB_API_TOKEN": "t"}
    with pytest.raises(HubAuthError):
        hub_token({**env, "JUPYTERHUB_USER": "alice"}, timeout=2)


def test_the_api_token_never_shows_in_a_repr(hub_api: FakeHubApi) -> None:
    access = JupyterHubAccess.from_env(env_for(hub_api))
    assert API_TOKEN not in repr(access) and "alice" in repr(access)


def test_the_manager_prefers_the_hub_token_over_the_environment(
    hub_api: FakeHubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env_for(hub_api).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FLAME_LAB_HUB_TOKEN", "typed-by-someone")
    hub_api.model = {"name": "alice", "auth_state": {"access_token": "from-auth-state"}}
    manager = FederationManager(ServerSettings())
    try:
        assert manager._hub_token() == "from-auth-state"
        off = FederationManager(ServerSettings(jupyterhub_auth_state=False))
        assert off._hub_token() == "typed-by-someone"
        off.close()
        hub_api.model = {"name": "alice", "auth_state": {}}  # e.g. a DummyAuthenticator hub
        assert manager._hub_token() == "typed-by-someone"
    finally:
        manager.close()


def test_the_scopes_named_in_the_hint_are_the_ones_the_deploy_config_grants() -> None:
    config = Path(__file__).resolve().parents[2] / "deploy" / "jupyterhub" / "jupyterhub_config.py"
    text = config.read_text(encoding="utf-8")
    assert all(f'"{scope}"' in text for scope in hubtoken.SCOPES)
