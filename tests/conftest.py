"""Every test runs with flame_lab's folders inside its own temporary home."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def flame_home(tmp_path, monkeypatch):
    """A private FLAME_LAB_HOME; no test reads or writes the real user's folders."""
    home = tmp_path / "flame-home"
    for var in (
        "FLAME_LAB_CONFIG_DIR",
        "FLAME_LAB_KEYS_DIR",
        "FLAME_LAB_SANDBOX_DIR",
        "FLAME_LAB_DATA_DIR",
        "FLAME_LAB_IDENTITY",
        "FLAME_LAB_PROFILE",
        "FLAME_LAB_CORE_URL",
        "FLAME_LAB_AUTH_URL",
        "FLAME_LAB_STORAGE_URL",
        "FLAME_LAB_PASSPHRASE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLAME_LAB_HOME", str(home))
    return home


SANDBOX_PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="session")
def sandbox_home(tmp_path_factory):
    """One sandbox federation (hub + node agents) for the whole run, with a researcher key."""
    from flame_lab.sandbox import daemon
    from flame_lab.security import keys

    home = tmp_path_factory.mktemp("flame-sandbox-home")
    identity = keys.Identity.generate()
    keys.save_identity(home / "keys" / "identity.json", identity, SANDBOX_PASSPHRASE)
    daemon.up(home / "sandbox")
    yield home
    daemon.down(home / "sandbox")


@pytest.fixture
def in_sandbox(sandbox_home, monkeypatch):
    """Point flame_lab at the shared sandbox and unlock the researcher's key."""
    monkeypatch.setenv("FLAME_LAB_HOME", str(sandbox_home))
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", SANDBOX_PASSPHRASE)
    return sandbox_home
