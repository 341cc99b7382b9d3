"""Several researchers logging in at once all get a token (found by bench/soak.py's load:
concurrent Argon2id derivations in the hub's executor hung or raised MemoryError -> 500)."""

from __future__ import annotations

import threading

import httpx2 as httpx

from tests.sandbox.hub.conftest import Sandbox


def test_six_logins_at_once_all_get_a_token(sandbox: Sandbox) -> None:
    p = sandbox.provisioned
    answers: list[int] = []
    lock = threading.Lock()

    def login() -> None:
        try:
            response = httpx.post(
                f"{sandbox.url}/auth/token",
                json={"grant_type": "password", "username": p.username, "password": p.password},
                timeout=120,
            )
            status = response.status_code
        except httpx.TransportError:
            status = -1
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=login) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 6
