"""The shipped deployment files say what they should: the group config wires FLAME's login and
the auth_state scopes, the demo config isolates users, the Helm values fit the z2jh chart and
agree with the group config, and the single-user image installs and enables flame_lab."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
import yaml
from traitlets.config import Config, PyFileConfigLoader

from flame_lab.server import hubtoken

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "jupyterhub"

# The part of z2jh's values.schema.yaml (jupyterhub/zero-to-jupyterhub-k8s, chart 3.x/4.x)
# that our values use, with the chart's own "additionalProperties: false" where it has it, so
# a misspelt or misplaced key fails here as it would fail `helm template`.
_IMAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "tag"],
    "properties": {
        "name": {"type": "string"},
        "tag": {"type": "string"},
        "pullPolicy": {"enum": [None, "", "IfNotPresent", "Always", "Never"]},
        "pullSecrets": {"type": "array"},
    },
}
_ENV = {"type": ["object", "array"]}
Z2JH_SUBSET = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hub": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "config": {"type": "object"},
                "loadRoles": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"scopes": {"type": "array", "items": {"type": "string"}}},
                    },
                },
                "extraEnv": _ENV,
                "extraConfig": {"type": "object"},
                "image": _IMAGE,
                "baseUrl": {"type": "string"},
                "services": {"type": "object"},
            },
        },
        "singleuser": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "image": _IMAGE,
                "defaultUrl": {"type": ["string", "null"]},
                "extraEnv": _ENV,
                "cmd": {"type": ["array", "string", "null"]},
                "startTimeout": {"type": ["integer", "null"]},
                "storage": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["type", "homeMountPath"],
                    "properties": {
                        "type": {"enum": ["dynamic", "static", "none"]},
                        "capacity": {"type": ["string", "null"]},
                        "homeMountPath": {"type": "string"},
                        "dynamic": {"type": "object"},
                        "static": {"type": "object"},
                    },
                },
            },
        },
        "proxy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "https": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": ["boolean", "null"]},
                        "type": {"enum": [None, "", "letsencrypt", "manual", "offload", "secret"]},
                        "hosts": {"type": "array"},
                        "letsencrypt": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "contactEmail": {"type": ["string", "null"]},
                                "acmeServer": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
            },
        },
        "cull": {
            "type": "object",
            "properties": {"enabled": {"type": "boolean"}, "timeout": {"type": "integer"}},
        },
    },
}


def load_config(name: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> Config:
    """Load a JupyterHub config file the way JupyterHub does (traitlets), with ``env`` set."""
    for var in ("FLAME_HUB_URL", "FLAME_AUTH_URL", "FLAME_CORE_URL", "FLAME_STORAGE_URL"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    loader = PyFileConfigLoader(name, path=str(DEPLOY))
    return loader.load_config()


def test_the_group_config_logs_in_through_flames_authup_endpoints(monkeypatch) -> None:
    c = load_config("jupyterhub_config.py", monkeypatch, FLAME_HUB_URL="https://hub.example/")
    auth = c.GenericOAuthenticator
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert auth.authorize_url == "https://hub.example/auth/authorize"
    assert auth.token_url == "https://hub.example/auth/token"
    assert auth.userdata_url == "https://hub.example/auth/users/@me"
    assert auth.username_claim == "name" and auth.enable_auth_state is True


def test_the_group_config_points_every_server_at_flame_with_flame_lab_enabled(
    monkeypatch,
) -> None:
    c = load_config(
        "jupyterhub_config.py",
        monkeypatch,
        FLAME_AUTH_URL="https://auth.x",
        FLAME_CORE_URL="https://core.x",
        FLAME_STORAGE_URL="https://storage.x",
        FLAME_PROJECT="my-study",
    )
    assert c.Spawner.environment == {
        "FLAME_LAB_CORE_URL": "https://core.x",
        "FLAME_LAB_AUTH_URL": "https://auth.x",
        "FLAME_LAB_STORAGE_URL": "https://storage.x",
    }
    assert "--ServerApp.jpserver_extensions=flame_lab=True" in c.Spawner.args
    assert "--FlameLab.project=my-study" in c.Spawner.args
    assert not any("TOKEN" in name for name in c.Spawner.environment)  # no token in the env


def test_servers_get_exactly_the_scopes_hubtoken_needs_and_users_hold_them(monkeypatch) -> None:
    c = load_config("jupyterhub_config.py", monkeypatch, FLAME_HUB_URL="https://hub.example")
    assert set(hubtoken.SCOPES) <= set(c.Spawner.server_token_scopes)
    assert not any(s.startswith("admin:users") for s in c.Spawner.server_token_scopes)
    user_role = next(r for r in c.JupyterHub.load_roles if r["name"] == "user")
    assert "admin:auth_state!user" in user_role["scopes"] and "self" in user_role["scopes"]


def test_the_group_config_refuses_to_start_without_the_flame_urls(monkeypatch) -> None:
    with pytest.raises(SystemExit, match="FLAME_HUB_URL"):
        load_config("jupyterhub_config.py", monkeypatch, FLAME_AUTH_URL="https://auth.x")


def test_the_group_config_limits_logins_to_listed_users_when_asked(monkeypatch) -> None:
    c = load_config(
        "jupyterhub_config.py",
        monkeypatch,
        FLAME_HUB_URL="https://hub.example",
        FLAME_JHUB_ALLOWED_USERS="alice, bob",
    )
    assert c.GenericOAuthenticator.allowed_users == {"alice", "bob"}
    assert "allow_all" not in c.GenericOAuthenticator


def test_the_demo_gives_each_user_a_private_flame_lab_home(monkeypatch, tmp_path) -> None:
    c = load_config("local_demo_config.py", monkeypatch, FLAME_LAB_DEMO_HOMES=str(tmp_path))
    assert c.JupyterHub.authenticator_class == "dummy"
    assert c.JupyterHub.spawner_class == "simple"
    assert c.JupyterHub.bind_url.startswith("http://127.0.0.1:")  # loopback only
    homes = {
        name: c.Spawner.environment["FLAME_LAB_HOME"](
            SimpleNamespace(home_dir=f"{tmp_path}/{name}")
        )
        for name in ("alice", "bob")
    }
    assert homes["alice"] != homes["bob"] and homes["alice"].startswith(f"{tmp_path}/alice/")
    assert not any(k.startswith("FLAME_LAB_CORE") for k in c.Spawner.environment)  # sandbox


def values() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text(encoding="utf-8"))


def test_the_helm_values_fit_the_keys_the_z2jh_chart_documents() -> None:
    jsonschema.validate(values(), Z2JH_SUBSET)


def test_the_schema_subset_would_catch_a_misplaced_key() -> None:
    broken = values()
    broken["singleuser"]["extraEnviron"] = broken["singleuser"].pop("extraEnv")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, Z2JH_SUBSET)


def test_the_helm_values_grant_the_same_login_and_scopes_as_the_group_config(
    monkeypatch,
) -> None:
    v = values()
    c = load_config("jupyterhub_config.py", monkeypatch, FLAME_HUB_URL="https://hub.example")
    config = v["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == c.JupyterHub.authenticator_class
    assert config["Authenticator"]["enable_auth_state"] is True
    oauth = config["GenericOAuthenticator"]
    assert oauth["userdata_url"].endswith("/users/@me") and oauth["username_claim"] == "name"
    assert oauth["token_url"].endswith("/token") and oauth["authorize_url"].endswith("/authorize")
    assert set(config["KubeSpawner"]["server_token_scopes"]) == set(c.Spawner.server_token_scopes)
    assert v["hub"]["loadRoles"]["user"]["scopes"] == c.JupyterHub.load_roles[0]["scopes"]
    assert set(v["singleuser"]["extraEnv"]) == set(c.Spawner.environment)
    assert "client_secret" not in oauth  # the secret comes from a k8s Secret, not this file
    assert "secretKeyRef" in v["hub"]["extraEnv"]["OAUTH_CLIENT_SECRET"]["valueFrom"]


def test_the_singleuser_image_installs_and_enables_flame_lab_and_runs_unprivileged() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "singleuser" / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    text = "\n".join(lines)
    assert lines[0].startswith("FROM quay.io/jupyter/")
    assert '"jupyterhub>=5' in text and "flame_lab-*.whl" in text
    assert "jupyter server extension enable --sys-prefix flame_lab" in text
    assert "USER ${NB_UID}" in lines and lines[-1] == 'CMD ["jupyterhub-singleuser"]'
