"""The FlameLab ExtensionApp: enabled by the shipped config file, configured by traitlets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flame_lab.server.handlers import MANAGER_SETTING

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_jupyter_config_enables_the_flame_lab_package():
    path = ROOT / "jupyter-config" / "server-config" / "flame_lab.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {"ServerApp": {"jpserver_extensions": {"flame_lab": True}}}


def test_the_extension_loads_under_its_name(jp_serverapp):
    manager = jp_serverapp.extension_manager
    assert manager.extensions["flame_lab.server"].enabled
    assert "flame_lab" in {app.name for app in manager.extension_apps.get("flame_lab.server", [])}


@pytest.mark.federation("hub")
def test_c_flamelab_traits_reach_the_manager(jp_serverapp, flame_config):
    settings = jp_serverapp.web_app.settings[MANAGER_SETTING].settings
    assert settings.core_url == flame_config["core_url"]
    assert settings.storage_url == flame_config["storage_url"]
    assert settings.project == "study"


@pytest.mark.federation("hub")
def test_kernels_started_by_the_server_see_the_same_hub(jp_serverapp, flame_config):
    assert os.environ["FLAME_LAB_CORE_URL"] == flame_config["core_url"]
    assert os.environ["FLAME_LAB_AUTH_URL"] == flame_config["auth_url"]
    assert os.environ["FLAME_LAB_STORAGE_URL"] == flame_config["storage_url"]


@pytest.fixture
def keep_environment(flame_config):
    flame_config["export_environment"] = False
    return flame_config


@pytest.mark.federation("hub")
def test_exporting_the_environment_can_be_switched_off(keep_environment, jp_serverapp):
    assert "FLAME_LAB_CORE_URL" not in os.environ
