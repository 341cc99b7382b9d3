"""The manager: errors mapped in one place, settings checked, keys unlocked only as asked."""

from __future__ import annotations

import getpass
import json

import pytest

from flame_lab import config, federation
from flame_lab.errors import (
    BadRequest,
    ConfigError,
    DraftError,
    FlameLabError,
    HubAuthError,
    HubError,
    HubUnreachable,
    KeyFileMissing,
    NotFound,
    PassphraseRequired,
    SandboxError,
    WrongPassphrase,
)
from flame_lab.server.manager import FederationManager, ServerSettings, error_reply
from tests.server.conftest import PASSPHRASE


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PassphraseRequired, 409),
        (DraftError, 400),
        (BadRequest, 400),
        (NotFound, 404),
        (HubUnreachable, 503),
        (HubAuthError, 502),
        (HubError, 502),
        (SandboxError, 503),
        (ConfigError, 500),
        (WrongPassphrase, 400),
        (KeyFileMissing, 400),
        (FlameLabError, 400),
    ],
)
def test_each_domain_error_has_one_status_and_the_error_body(error, status):
    code, body = error_reply(error("what happened", hint="what to do"))
    assert code == status
    assert body == {"error": error.__name__, "message": "what happened", "hint": "what to do"}


def test_an_unexpected_exception_is_500_without_its_text():
    code, body = error_reply(RuntimeError("internal detail /secret/path"))
    assert code == 500 and body["error"] == "InternalError"
    assert "secret" not in json.dumps(body) and body["hint"]


def test_a_half_configured_hub_is_refused_at_start_up():
    with pytest.raises(ConfigError, match="storage_url"):
        FederationManager(ServerSettings(core_url="https://h/core", auth_url="https://h/auth"))


def test_only_configured_settings_are_exported_to_kernels():
    settings = ServerSettings(profile="hub-a", sandbox_home="/srv/sandbox")
    assert settings.environment() == {
        "FLAME_LAB_PROFILE": "hub-a",
        "FLAME_LAB_SANDBOX_DIR": "/srv/sandbox",
    }


def test_manager_repr_names_the_profile_only():
    assert repr(FederationManager()) == "FederationManager('sandbox')"


def test_a_hub_profile_with_a_user_but_no_token_never_prompts(monkeypatch):
    def no_terminal(*_args, **_kwargs):
        raise AssertionError("the server must never prompt on its terminal")

    monkeypatch.setattr(getpass, "getpass", no_terminal)
    config.config_dir().mkdir(parents=True)
    config.config_file().write_text(
        'profile = "clinic"\n[profiles.clinic]\ncore_url = "http://127.0.0.1:9/core"\n'
        'auth_url = "http://127.0.0.1:9/auth"\nstorage_url = "http://127.0.0.1:9/storage"\n'
        'user = "alice"\n',
        encoding="utf-8",
    )
    manager = FederationManager()
    with pytest.raises(HubAuthError, match="alice") as caught:
        manager.federation()
    assert "FLAME_LAB_HUB_TOKEN" in caught.value.hint


def test_sandbox_actions_are_refused_when_the_server_uses_a_hub():
    manager = FederationManager(
        ServerSettings(core_url="http://h/core", auth_url="http://h/auth", storage_url="http://h/s")
    )
    with pytest.raises(SandboxError, match="not the sandbox"):
        manager._sandbox_start()
    with pytest.raises(SandboxError, match="not the sandbox"):
        manager._sandbox_stop()


def test_without_a_key_file_submission_says_how_to_create_one():
    with pytest.raises(KeyFileMissing, match="no flame_lab identity"):
        FederationManager._identity(None)


def test_a_locked_key_needs_a_passphrase(monkeypatch, identity_file):
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(identity_file))
    with pytest.raises(PassphraseRequired):
        FederationManager._identity(None)


def test_a_passphrase_from_the_request_unlocks_the_key_without_caching_it(
    monkeypatch, identity_file
):
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(identity_file))
    monkeypatch.setattr(federation, "_identities", {})  # nothing unlocked in this process yet
    identity = FederationManager._identity(PASSPHRASE)
    assert identity.key_id and identity_file not in federation._identities
    with pytest.raises(PassphraseRequired):
        FederationManager._identity(None)


def test_the_server_environment_passphrase_unlocks_the_key(monkeypatch, identity_file):
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(identity_file))
    monkeypatch.setenv("FLAME_LAB_PASSPHRASE", PASSPHRASE)
    assert FederationManager._identity(None).key_id


def test_a_wrong_passphrase_from_the_request_is_refused(monkeypatch, identity_file):
    monkeypatch.setenv("FLAME_LAB_IDENTITY", str(identity_file))
    with pytest.raises(WrongPassphrase):
        FederationManager._identity("wrong")


def test_a_configured_profile_that_is_not_in_effect_is_reported(monkeypatch):
    monkeypatch.setenv("FLAME_LAB_PROFILE", "sandbox")
    manager = FederationManager(ServerSettings(profile="clinic"))
    with pytest.raises(ConfigError, match="clinic"):
        manager.federation()
    assert repr(manager) == "FederationManager('unknown')"


def test_a_configured_profile_in_effect_is_used(monkeypatch):
    config.config_dir().mkdir(parents=True)
    config.config_file().write_text(
        '[profiles.clinic]\ncore_url = "http://127.0.0.1:9/core"\n'
        'auth_url = "http://127.0.0.1:9/auth"\nstorage_url = "http://127.0.0.1:9/storage"\n'
        'token = "t"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("FLAME_LAB_PROFILE", "clinic")
    manager = FederationManager(ServerSettings(profile="clinic"))
    assert manager._profile().core_url == "http://127.0.0.1:9/core"
    with pytest.raises(HubUnreachable):  # nothing listens there: the hub, not the sandbox
        manager.federation()
