"""POST /auth/token: the three grants flame_hub's flows use, refresh rotation and expiry."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from flame_hub import AuthClient, CoreClient, HubAPIError
from flame_hub.auth import PasswordAuth

from flame_lab.sandbox.hub.app import HubThread
from flame_lab.sandbox.hub.auth import ACCESS_TTL, hash_password, verify_password
from flame_lab.sandbox.hub.provision import Provisioned
from tests.sandbox.hub.conftest import provisioned_home


class Clock:
    """A clock the test moves by hand, so expiry never depends on waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked(tmp_path) -> Iterator[tuple[str, Provisioned, Clock]]:
    clock = Clock()
    provisioned = provisioned_home(tmp_path / "hub")
    with HubThread(tmp_path / "hub", clock=clock) as server:
        yield server.url, provisioned, clock


def password_grant(http: httpx2.Client, p: Provisioned) -> dict:
    r = http.post(
        "/auth/token",
        json={"grant_type": "password", "username": p.username, "password": p.password},
    )
    assert r.status_code == 200
    return r.json()


def test_password_grant_answers_like_oauth2(clocked) -> None:
    url, p, _ = clocked
    with httpx2.Client(base_url=url) as http:
        token = password_grant(http, p)
    assert set(token) == {"access_token", "expires_in", "token_type", "refresh_token", "scope"}
    assert token["token_type"] == "Bearer" and token["expires_in"] == ACCESS_TTL


def test_form_encoded_token_requests_work_too(clocked) -> None:
    url, p, _ = clocked
    node = p.nodes[0]
    with httpx2.Client(base_url=url) as http:
        r = http.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": node.client_id,
                "client_secret": node.client_secret,
            },
        )
    assert r.status_code == 200 and "refresh_token" not in r.json()


def test_an_expired_access_token_is_refused(clocked) -> None:
    url, p, clock = clocked
    with httpx2.Client(base_url=url) as http:
        token = password_grant(http, p)["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert http.get("/core/nodes", headers=headers).status_code == 200
        clock.now += ACCESS_TTL + 1
        r = http.get("/core/nodes", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


def test_a_refresh_token_is_single_use_and_yields_a_working_pair(clocked) -> None:
    url, p, clock = clocked
    with httpx2.Client(base_url=url) as http:
        first = password_grant(http, p)
        clock.now += ACCESS_TTL + 1
        renewed = http.post(
            "/auth/token",
            json={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        )
        assert renewed.status_code == 200
        again = http.post(
            "/auth/token",
            json={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        )
        assert again.status_code == 400
        ok = http.get(
            "/core/nodes", headers={"Authorization": f"Bearer {renewed.json()['access_token']}"}
        )
    assert ok.status_code == 200


def test_flame_hub_password_flow_refreshes_after_expiry(clocked) -> None:
    url, p, clock = clocked
    core = CoreClient(
        f"{url}/core", auth=PasswordAuth(p.username, p.password, base_url=f"{url}/auth")
    )
    assert len(core.get_nodes()) == 3
    clock.now += ACCESS_TTL + 1
    flow = core._client.auth
    flow._current_token_expires_at_nanos = 0  # the client's own clock: make it see expiry too
    assert len(core.get_nodes()) == 3


def test_unknown_grants_and_fields_are_refused(clocked) -> None:
    url, _, _ = clocked
    with httpx2.Client(base_url=url) as http:
        grant = http.post("/auth/token", json={"grant_type": "implicit"})
        extra = http.post("/auth/token", json={"grant_type": "password", "user": "x"})
    assert grant.status_code == 400 and grant.json()["code"] == "unsupported_grant_type"
    assert extra.status_code == 400 and "user" in extra.json()["message"]


def test_a_client_without_credentials_gets_a_hub_error(clocked) -> None:
    url, _, _ = clocked
    core = CoreClient(
        f"{url}/core", auth=PasswordAuth("researcher", "wrong", base_url=f"{url}/auth")
    )
    with pytest.raises(HubAPIError) as err:
        core.get_nodes()
    assert err.value.error_response.status_code == 400


def test_passwords_are_stored_as_salted_scrypt_hashes() -> None:
    stored = hash_password("correct horse")
    assert "correct horse" not in stored and stored != hash_password("correct horse")
    assert verify_password("correct horse", stored) and not verify_password("wrong", stored)


def test_provisioned_secrets_never_show_in_reprs(clocked) -> None:
    _, p, _ = clocked
    assert p.password not in repr(p)
    assert all(n.client_secret not in repr(n) for n in p.nodes)


def test_the_auth_client_reads_realms_users_and_robot_clients(clocked) -> None:
    url, p, _ = clocked
    auth = AuthClient(
        f"{url}/auth", auth=PasswordAuth(p.username, p.password, base_url=f"{url}/auth")
    )
    assert [r.name for r in auth.get_realms()] == ["master"]
    users = auth.get_users()
    assert [u.name for u in users] == ["researcher"] and users[0].realm is not None
    clients = auth.find_clients(filter={"name": ("~", "node-")})
    assert len(clients) == 3 and all(c.secret_hashed for c in clients)
    assert auth.get_client(p.nodes[0].client_id).name == f"node-{p.nodes[0].name}"
