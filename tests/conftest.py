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
