"""Fixtures for the server extension: a Jupyter server with flame_lab loaded, a sandbox, a key."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 (jp_fetch, jp_serverapp, ...)
from tornado.httpclient import HTTPResponse

from flame_lab.sandbox import daemon
from flame_lab.security.keys import Identity, save_identity

PASSPHRASE = "correct horse battery staple, server edition"
EXPORTED = (
    "FLAME_LAB_PROFILE",
    "FLAME_LAB_CORE_URL",
    "FLAME_LAB_AUTH_URL",
    "FLAME_LAB_STORAGE_URL",
    "FLAME_LAB_SANDBOX_DIR",
)


@pytest.fixture(scope="session")
def identity_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One researcher identity for the whole run (the KDF is slow on purpose)."""
    path = tmp_path_factory.mktemp("keys") / "identity.json"
    save_identity(path, Identity.generate(), PASSPHRASE)
    return path


@pytest.fixture(scope="session")
def sandbox_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running sandbox federation (hub and, where present, node agents), stopped at the end."""
    root = tmp_path_factory.mktemp("sandbox")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLAME_LAB_HOME", str(root / "flame-home"))
        home = root / "home"
        daemon.up(home)
    yield home
    daemon.down(home)


@pytest.fixture
def researcher(monkeypatch: pytest.MonkeyPatch, identity_file: Path) -> Path:
    """The researcher's identity file, unlocked through FLAME_LAB_PASSPHRASE."""
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(identity_file))
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", PASSPHRASE)
    return identity_file


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "federation(kind): what the test server's c.FlameLab points at: 'stopped' (default, a "
        "sandbox home nobody started), 'sandbox' (the running session sandbox), 'fresh' (an "
        "empty sandbox home, autostart on) or 'hub' (a hub URL where nothing listens)",
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def flame_config(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """``c.FlameLab`` for the test server, chosen by the test's ``federation`` mark."""
    marker = request.node.get_closest_marker("federation")
    kind = marker.args[0] if marker else "stopped"
    if kind == "sandbox":
        home = request.getfixturevalue("sandbox_home")
        return {"sandbox_home": str(home), "sandbox_autostart": False}
    if kind == "fresh":
        return {"sandbox_home": str(tmp_path / "fresh-sandbox"), "sandbox_autostart": True}
    if kind == "hub":
        monkeypatch.setenv("FLAME_LAB_HUB_TOKEN", "token-of-a-hub-that-is-not-there")
        base = f"http://127.0.0.1:{_closed_port()}"
        return {
            "core_url": f"{base}/core",
            "auth_url": f"{base}/auth",
            "storage_url": f"{base}/storage",
            "project": "study",
        }
    assert kind == "stopped", kind
    return {"sandbox_home": str(tmp_path / "no-sandbox"), "sandbox_autostart": False}


@pytest.fixture
def jp_server_config(flame_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    """flame_lab enabled, every unauthenticated request refused, as on a real server."""
    for var in EXPORTED:  # the extension exports these; monkeypatch restores them afterwards
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    return {
        "ServerApp": {
            "jpserver_extensions": {"flame_lab.server": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        },
        "FlameLab": flame_config,
    }


class Api:
    """Calls ``/flame-lab/api/...`` with Jupyter's token; answers (status, JSON body)."""

    def __init__(self, fetch) -> None:
        self.fetch = fetch

    async def request(self, method: str, path: str, body: Any = None, **params: str):
        kwargs: dict[str, Any] = {"method": method, "raise_error": False}
        if method != "GET":
            kwargs["body"] = json.dumps({} if body is None else body)
        response: HTTPResponse = await self.fetch(
            "flame-lab", "api", *path.split("/"), params=params, **kwargs
        )
        text = response.body.decode() if response.body else ""
        return response.code, (json.loads(text) if text else None)

    async def get(self, path: str, **params: str):
        return await self.request("GET", path, **params)

    async def post(self, path: str, body: Any = None):
        return await self.request("POST", path, body)


@pytest.fixture
def api(jp_fetch) -> Api:
    return Api(jp_fetch)


def notebook(*cells: str, kind: str = "code") -> dict[str, Any]:
    """A minimal nbformat-4 notebook holding the given cell sources."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": kind,
                "metadata": {},
                "source": src,
                "outputs": [],
                "execution_count": None,
            }
            if kind == "code"
            else {"cell_type": kind, "metadata": {}, "source": src}
            for src in cells
        ],
    }


ANALYSIS_CELL = """%%flame
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


StarModel(
    analyzer=Count,
    aggregator=Total,
    data_type="fhir",
    query="Patient?_summary=count",
    simple_analysis=True,
    output_type="str",
)
"""
