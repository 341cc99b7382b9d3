"""deploy/jupyterhub/local_demo_config.py run for real: DummyAuthenticator and
SimpleLocalProcessSpawner, each user's flame_lab working in a private home with its own
sandbox profile. Proves that the demo config starts, logs people in and keeps them apart."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.deploy.hubprocess import (
    DEPLOY,
    free_port,
    machine_config,
    running_jupyterhub,
    wait_for_server,
)

PASSWORD = "demo password"
USERS = ("ada", "grace")
_XSRF = re.compile(r'name="_xsrf" value="([^"]+)"')


def dummy_login(session: requests.Session, url: str, user: str) -> None:
    """JupyterHub's own login form (with its XSRF field), as DummyAuthenticator shows it."""
    page = session.get(f"{url}/hub/login", timeout=30)
    xsrf = _XSRF.search(page.text)
    assert xsrf, page.text[:500]
    done = session.post(
        f"{url}/hub/login",
        data={"username": user, "password": PASSWORD, "_xsrf": xsrf.group(1)},
        timeout=30,
    )
    assert done.status_code == 200 and session.cookies.get("jupyterhub-session-id"), done.url


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict]]:
    tmp = tmp_path_factory.mktemp("demo")
    homes = tmp / "homes"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp / "demo_config.py"
    config.write_text(
        f"load_subconfig({str(DEPLOY / 'local_demo_config.py')!r})\n"
        + machine_config(tmp, port, homes),
        encoding="utf-8",
    )
    env = {**os.environ, "FLAME_LAB_DEMO_PASSWORD": PASSWORD, "FLAME_LAB_DEMO_HOMES": str(homes)}
    log = tmp / "jupyterhub.log"
    with running_jupyterhub(config, env, url, log):
        browsers = {}
        for user in USERS:
            browsers[user] = requests.Session()
            dummy_login(browsers[user], url, user)
            browsers[user].get(f"{url}/hub/spawn/{user}", timeout=30)
        for user in USERS:
            wait_for_server(browsers[user], url, user, log)
        yield url, homes, browsers


def test_a_wrong_demo_password_is_refused(demo) -> None:
    url, _, _ = demo
    session = requests.Session()
    page = session.get(f"{url}/hub/login", timeout=30)
    r = session.post(
        f"{url}/hub/login",
        data={"username": "eve", "password": "guess", "_xsrf": _XSRF.search(page.text).group(1)},
        timeout=30,
    )
    assert not session.cookies.get("jupyterhub-session-id") and "Invalid" in r.text


def test_each_demo_user_has_flame_lab_on_a_private_sandbox_in_their_own_home(demo) -> None:
    url, homes, browsers = demo
    for user in USERS:
        r = browsers[user].get(f"{url}/user/{user}/flame-lab/api/status", timeout=60)
        status = r.json()
        assert r.status_code == 200 and status["federation"]["kind"] == "sandbox", status
        assert status["keyFile"] == str(homes / user / ".flame-lab" / "keys" / "identity.json")
