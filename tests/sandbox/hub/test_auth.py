"""POST /auth/token: the three grants flame_hub's flows use, refresh rotation and expiry."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx2
import pytest
from flame_hub import AuthClient, CoreClient, HubAPIError
from flame_hub.auth import PasswordAuth

import flame_lab.sandbox.hub.auth as auth_module
from flame_lab.sandbox.hub.app import HubThread
from flame_lab.sandbox.hub.auth import ACCESS_TTL, hash_password, needs_rehash, verify_password
from flame_lab.sandbox.hub.provision import Provisioned
from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.hub.throttle import FREE_FAILURES
from flame_lab.security.keyfile import ARGON2_DEFAULT, ARGON2_MIN_MEMORY_KIB
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


def test_passwords_are_hashed_as_strongly_as_key_files() -> None:
    stored = hash_password("correct horse")
    assert "correct horse" not in stored and stored != hash_password("correct horse")
    assert verify_password("correct horse", stored) and not verify_password("wrong", stored)
    d = ARGON2_DEFAULT
    assert stored.startswith(f"argon2id$m={d['memoryKiB']},t={d['iterations']},p={d['lanes']}$")
    assert d["memoryKiB"] >= ARGON2_MIN_MEMORY_KIB and not needs_rehash(stored)


def test_an_older_weaker_hash_still_logs_in_and_is_upgraded(clocked, tmp_path) -> None:
    url, p, _ = clocked
    salt = b"0123456789abcdef"
    legacy = hashlib.scrypt(b"old-password", salt=salt, n=2**14, r=8, p=1)
    store = Store(tmp_path / "hub")  # the clocked hub's home
    store.execute(
        'UPDATE users SET "passwordHash" = ? WHERE "name" = ?',
        (f"scrypt${salt.hex()}${legacy.hex()}", p.username),
    )
    with httpx2.Client(base_url=url) as http:
        r = http.post(
            "/auth/token",
            json={"grant_type": "password", "username": p.username, "password": "old-password"},
        )
    assert r.status_code == 200
    stored = store.execute('SELECT "passwordHash" FROM users WHERE "name" = ?', (p.username,))
    store.close()
    assert stored[0][0].startswith("argon2id$") and verify_password("old-password", stored[0][0])


def test_an_unknown_user_costs_the_same_hash_as_a_known_one(clocked, monkeypatch) -> None:
    """No timing: count the Argon2id derivations a failed login makes, for both kinds."""
    url, p, _ = clocked
    auth_module.dummy_hash()  # computed once, before counting
    calls: list[int] = []
    real = auth_module._argon2

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(auth_module, "_argon2", counting)
    answers = []
    with httpx2.Client(base_url=url) as http:
        for name in (p.username, "nobody-by-this-name"):
            calls.clear()
            r = http.post(
                "/auth/token",
                json={"grant_type": "password", "username": name, "password": "wrong"},
            )
            answers.append((r.status_code, r.json()["message"], len(calls)))
    assert answers[0] == answers[1] and answers[0][2] == 1


def test_repeated_bad_passwords_are_slowed_with_429_and_retry_after(clocked) -> None:
    url, p, clock = clocked
    bad = {"grant_type": "password", "username": p.username, "password": "guess"}
    with httpx2.Client(base_url=url) as http:
        codes = [http.post("/auth/token", json=bad).status_code for _ in range(FREE_FAILURES)]
        assert codes == [400] * FREE_FAILURES
        r = http.post("/auth/token", json=bad)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert "too many failed logins" in r.json()["message"]
        # while slowed, even the right password is answered 429: guessing gains nothing
        good = {**bad, "password": p.password}
        assert http.post("/auth/token", json=good).status_code == 429
        clock.now += 1
        assert http.post("/auth/token", json=bad).status_code == 400  # allowed again, failed
        r = http.post("/auth/token", json=bad)
        assert r.status_code == 429 and r.headers["Retry-After"] == "2"  # doubled
        clock.now += 2
        assert http.post("/auth/token", json=good).status_code == 200
        # a success clears the account's count
        assert http.post("/auth/token", json=bad).status_code == 400


def test_guessing_across_many_accounts_is_slowed_per_address(tmp_path) -> None:
    provisioned_home(tmp_path / "hub")
    # on loopback the address counts only when told to (every local client shares it)
    with HubThread(tmp_path / "hub", clock=Clock(), throttle_loopback=True) as server:
        codes = _guess_many(server.url)
    assert codes == [400] * FREE_FAILURES + [429]
    with HubThread(tmp_path / "hub", clock=Clock()) as server:
        assert _guess_many(server.url) == [400] * (FREE_FAILURES + 1)


def _guess_many(url: str) -> list[int]:
    with httpx2.Client(base_url=url) as http:
        codes = [
            http.post(
                "/auth/token",
                json={"grant_type": "password", "username": f"user{i}", "password": "x"},
            ).status_code
            for i in range(FREE_FAILURES + 1)
        ]
    return codes


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
    assert [u.name for u in users] == ["researcher", "admin"] and users[0].realm is not None
    clients = auth.find_clients(filter={"name": ("~", "node-")})
    assert len(clients) == 3 and all(c.secret_hashed for c in clients)
    assert auth.get_client(p.nodes[0].client_id).name == f"node-{p.nodes[0].name}"
