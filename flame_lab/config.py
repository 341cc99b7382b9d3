"""Where flame_lab keeps its files, and which federation (profile) is active.

Folders follow XDG; each can be moved by an environment variable so that tests and
JupyterHub deployments point them elsewhere. ``FLAME_LAB_HOME`` moves all of them at once.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from flame_lab.errors import ConfigError

SANDBOX = "sandbox"


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / default


def _folder(specific_var: str, home_sub: str, xdg_var: str, xdg_default: str, xdg_sub: str) -> Path:
    if os.environ.get(specific_var):
        return Path(os.environ[specific_var]).expanduser()
    if os.environ.get("FLAME_LAB_HOME"):
        return Path(os.environ["FLAME_LAB_HOME"]).expanduser() / home_sub
    return _xdg(xdg_var, xdg_default) / "flame-lab" / xdg_sub


def config_dir() -> Path:
    """Holds config.toml (FLAME_LAB_CONFIG_DIR)."""
    return _folder("FLAME_LAB_CONFIG_DIR", "config", "XDG_CONFIG_HOME", ".config", "")


def keys_dir() -> Path:
    """Holds the researcher's key file (FLAME_LAB_KEYS_DIR); kept at mode 0700."""
    return _folder("FLAME_LAB_KEYS_DIR", "keys", "XDG_DATA_HOME", ".local/share", "keys")


def sandbox_dir() -> Path:
    """Holds the sandbox federation's database, nodes and logs (FLAME_LAB_SANDBOX_DIR)."""
    return _folder("FLAME_LAB_SANDBOX_DIR", "sandbox", "XDG_DATA_HOME", ".local/share", "sandbox")


def config_file() -> Path:
    return config_dir() / "config.toml"


def identity_file() -> Path:
    """The researcher's own identity (FLAME_LAB_IDENTITY overrides the file itself)."""
    if os.environ.get("FLAME_LAB_IDENTITY"):
        return Path(os.environ["FLAME_LAB_IDENTITY"]).expanduser()
    return keys_dir() / "identity.json"


@dataclass(frozen=True)
class Profile:
    """A federation to talk to: the embedded sandbox, or a real hub's three URLs."""

    name: str = SANDBOX
    core_url: str | None = None
    auth_url: str | None = None
    storage_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_sandbox(self) -> bool:
        return self.name == SANDBOX and self.core_url is None

    @classmethod
    def from_hub(cls, name: str, base_url: str) -> Profile:
        """A self-hosted hub serves core, storage and auth under one host."""
        base = base_url.rstrip("/")
        return cls(name, f"{base}/core", f"{base}/auth", f"{base}/storage")


def _read_config(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def active_profile() -> Profile:
    """Environment first (FLAME_LAB_CORE_URL/AUTH_URL/STORAGE_URL), then FLAME_LAB_PROFILE or
    config.toml's ``profile = "..."`` with a ``[profiles.NAME]`` table; else the sandbox."""
    env = {
        k: os.environ.get(f"FLAME_LAB_{k.upper()}") for k in ("core_url", "auth_url", "storage_url")
    }
    if any(env.values()):
        missing = [f"FLAME_LAB_{k.upper()}" for k, v in env.items() if not v]
        if missing:
            raise ConfigError(
                "A real hub needs all three URLs; missing " + ", ".join(missing),
                hint="Set FLAME_LAB_CORE_URL, FLAME_LAB_AUTH_URL and FLAME_LAB_STORAGE_URL.",
            )
        return Profile("env", **env)
    data = _read_config(config_file())
    name = os.environ.get("FLAME_LAB_PROFILE") or data.get("profile") or SANDBOX
    if name == SANDBOX:
        return Profile()
    table = data.get("profiles", {}).get(name)
    if not isinstance(table, dict):
        raise ConfigError(
            f"Profile {name!r} is not defined in {config_file()}",
            hint=f"Add a [profiles.{name}] table with core_url, auth_url and storage_url.",
        )
    urls = {k: table.get(k) for k in ("core_url", "auth_url", "storage_url")}
    if "hub_url" in table and not any(urls.values()):
        return Profile.from_hub(name, str(table["hub_url"]))
    missing = [k for k, v in urls.items() if not v]
    if missing:
        raise ConfigError(f"Profile {name!r} lacks " + ", ".join(missing))
    extra = {k: str(v) for k, v in table.items() if k not in urls}
    return Profile(name, **urls, extra=extra)


def data_dir() -> Path:
    """The researcher's own records, e.g. what was submitted (FLAME_LAB_DATA_DIR)."""
    return _folder("FLAME_LAB_DATA_DIR", "data", "XDG_DATA_HOME", ".local/share", "")
