"""Run a real JupyterHub (with configurable-http-proxy from npm) for a test, and stop it."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.deploy.browser import wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "jupyterhub"
PROXY = DEPLOY / "node_modules" / ".bin" / "configurable-http-proxy"
START_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_proxy() -> None:
    """configurable-http-proxy from npm, pinned by deploy/jupyterhub's lock file."""
    if not PROXY.exists():
        npm = shutil.which("npm")
        assert npm, "the JupyterHub tests need node and npm for configurable-http-proxy"
        subprocess.run([npm, "ci", "--prefix", str(DEPLOY), "--no-audit", "--no-fund"], check=True)
    assert PROXY.exists(), f"{PROXY} is missing: run `npm ci --prefix {DEPLOY}`"


def machine_config(tmp: Path, port: int, homes: Path) -> str:
    """What differs on a test machine: ports, files, a proxy from node_modules, and
    SimpleLocalProcessSpawner servers run as this (root) user with homes under ``homes``."""
    ensure_proxy()
    return f"""
import sys
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/jupyterhub_cookie_secret"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
if "--allow-root" not in c.Spawner.args:
    c.Spawner.args.append("--allow-root")  # CI runs as root; these servers run as its user
c.Spawner.start_timeout = {START_SECONDS}
c.Spawner.http_timeout = {START_SECONDS}
"""


@contextlib.contextmanager
def running_jupyterhub(config: Path, env: dict[str, str], url: str, log: Path) -> Iterator[None]:
    """Start ``jupyterhub -f config``; yield once it answers; SIGTERM it (and its servers)."""
    with open(log, "wb") as out:
        hub = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=config.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def answers() -> bool:
            assert hub.poll() is None, f"jupyterhub exited:\n{tail(log)}"
            try:
                return requests.get(f"{url}/hub/api/", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for("JupyterHub answering", answers, START_SECONDS)
        yield
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait(10)


def tail(log: Path, size: int = 4000) -> str:
    return log.read_text(errors="replace")[-size:] if log.exists() else "(no log)"


def wait_for_server(session: requests.Session, url: str, user: str, log: Path) -> None:
    """Wait until ``user``'s server answers, then open its Lab page as a browser would: that
    runs the server's own OAuth with the hub and sets Jupyter's _xsrf cookie."""

    def answers() -> bool:
        r = session.get(f"{url}/user/{user}/api", timeout=30)
        return r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")

    try:
        wait_for(f"{user}'s server", answers, START_SECONDS)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{tail(log)}") from None
    lab = session.get(f"{url}/user/{user}/lab", timeout=60)
    assert lab.status_code == 200 and lab.url.endswith(f"/user/{user}/lab"), lab.url
