"""Where files live and which federation is active."""

from __future__ import annotations

import pytest

from flame_lab import config
from flame_lab.errors import ConfigError


def test_flame_lab_home_moves_every_folder(flame_home):
    assert config.config_dir() == flame_home / "config"
    assert config.keys_dir() == flame_home / "keys"
    assert config.sandbox_dir() == flame_home / "sandbox"
    assert config.identity_file() == flame_home / "keys" / "identity.json"


def test_specific_variables_win_over_flame_lab_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAME_LAB_KEYS_DIR", str(tmp_path / "k"))
    monkeypatch.setenv("FLAME_LAB_SANDBOX_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(tmp_path / "me.json"))
    assert config.keys_dir() == tmp_path / "k"
    assert config.sandbox_dir() == tmp_path / "s"
    assert config.identity_file() == tmp_path / "me.json"


def test_without_overrides_the_xdg_folders_are_used(tmp_path, monkeypatch):
    monkeypatch.delenv("FLAME_LAB_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert config.config_file() == tmp_path / "cfg" / "flame-lab" / "config.toml"
    assert config.keys_dir() == tmp_path / "data" / "flame-lab" / "keys"
    assert config.sandbox_dir() == tmp_path / "data" / "flame-lab" / "sandbox"


def test_the_sandbox_is_the_default_profile():
    profile = config.active_profile()
    assert profile.is_sandbox and profile.name == "sandbox"


def _write_config(text: str) -> None:
    config.config_dir().mkdir(parents=True, exist_ok=True)
    config.config_file().write_text(text, encoding="utf-8")


def test_a_named_profile_gives_a_real_hubs_urls():
    _write_config(
        'profile = "mii"\n[profiles.mii]\ncore_url = "https://core.example"\n'
        'auth_url = "https://auth.example"\nstorage_url = "https://storage.example"\n'
    )
    profile = config.active_profile()
    assert not profile.is_sandbox
    assert (profile.core_url, profile.auth_url, profile.storage_url) == (
        "https://core.example",
        "https://auth.example",
        "https://storage.example",
    )


def test_hub_url_expands_to_a_self_hosted_hubs_three_apis():
    _write_config('profile = "local"\n[profiles.local]\nhub_url = "http://hub.example/"\n')
    profile = config.active_profile()
    assert profile.core_url == "http://hub.example/core"
    assert profile.auth_url == "http://hub.example/auth"
    assert profile.storage_url == "http://hub.example/storage"


def test_flame_lab_profile_variable_selects_the_profile(monkeypatch):
    _write_config('profile = "sandbox"\n[profiles.other]\nhub_url = "http://h.example"\n')
    monkeypatch.setenv("FLAME_LAB_PROFILE", "other")
    assert config.active_profile().name == "other"


def test_environment_urls_override_the_config_file(monkeypatch):
    for name, url in (("CORE", "http://c"), ("AUTH", "http://a"), ("STORAGE", "http://s")):
        monkeypatch.setenv(f"FLAME_LAB_{name}_URL", url)
    assert config.active_profile().core_url == "http://c"


def test_partial_environment_urls_are_refused_with_the_missing_names(monkeypatch):
    monkeypatch.setenv("FLAME_LAB_CORE_URL", "http://c")
    with pytest.raises(ConfigError) as info:
        config.active_profile()
    assert "FLAME_LAB_AUTH_URL" in info.value.message
    assert "FLAME_LAB_STORAGE_URL" in info.value.message


def test_an_undefined_profile_is_refused_with_a_hint():
    _write_config('profile = "nowhere"\n')
    with pytest.raises(ConfigError) as info:
        config.active_profile()
    assert "[profiles.nowhere]" in info.value.hint


def test_a_profile_missing_a_url_is_refused():
    _write_config('profile = "p"\n[profiles.p]\ncore_url = "http://c"\n')
    with pytest.raises(ConfigError, match="auth_url, storage_url"):
        config.active_profile()


def test_broken_toml_is_a_config_error_naming_the_file():
    _write_config("profile = \n")
    with pytest.raises(ConfigError, match=r"config\.toml"):
        config.active_profile()
