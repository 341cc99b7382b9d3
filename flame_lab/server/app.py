"""The FlameLab ExtensionApp: traitlets configuration, the manager and the routes.

A JupyterHub admin configures it without code, e.g. in ``jupyter_server_config.py``::

    c.FlameLab.profile = "hospital-hub"        # a [profiles.NAME] of config.toml
    c.FlameLab.core_url = "https://core.privateaim.net"   # or the three hub URLs ...
    c.FlameLab.auth_url = "https://auth.privateaim.net"
    c.FlameLab.storage_url = "https://storage.privateaim.net"
    c.FlameLab.project = "my-study"
    c.FlameLab.sandbox_autostart = False
    c.FlameLab.sandbox_home = "/srv/flame-lab/sandbox"
"""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Unicode

from flame_lab import __version__
from flame_lab.server import routes
from flame_lab.server.handlers import MANAGER_SETTING
from flame_lab.server.manager import FederationManager, ServerSettings


class FlameLab(ExtensionApp):
    """flame_lab's server extension; configured as ``c.FlameLab.<trait>``."""

    name = "flame_lab"
    version = __version__
    description = "REST API of flame_lab's JupyterLab panel (federated analysis on FLAME)"
    load_other_extensions = True

    profile = Unicode(
        "", help="Federation profile from flame-lab's config.toml; empty: the sandbox."
    ).tag(config=True)
    core_url = Unicode("", help="A FLAME Hub's core API URL (with auth_url and storage_url).").tag(
        config=True
    )
    auth_url = Unicode("", help="The hub's auth (Authup) API URL.").tag(config=True)
    storage_url = Unicode("", help="The hub's storage API URL.").tag(config=True)
    project = Unicode("", help="The hub project analyses are submitted to (name or id).").tag(
        config=True
    )
    sandbox_autostart = Bool(
        True, help="Start the local sandbox federation when the panel first needs it."
    ).tag(config=True)
    sandbox_home = Unicode(
        "", help="Folder of the sandbox federation; empty: flame-lab's default folder."
    ).tag(config=True)
    token_env = Unicode(
        "FLAME_LAB_HUB_TOKEN",
        help="Environment variable holding the hub access token (never put the token in config).",
    ).tag(config=True)
    jupyterhub_auth_state = Bool(
        True,
        help="Under JupyterHub, fetch the user's FLAME access token from the hub API "
        "(auth_state, see deploy/jupyterhub) on each connect, before trying token_env.",
    ).tag(config=True)
    export_environment = Bool(
        True,
        help="Also set FLAME_LAB_PROFILE / _CORE_URL / _AUTH_URL / _STORAGE_URL / _SANDBOX_DIR "
        "in the server's environment, so that kernels it starts use the same federation.",
    ).tag(config=True)

    def server_settings(self) -> ServerSettings:
        return ServerSettings(
            profile=self.profile,
            core_url=self.core_url,
            auth_url=self.auth_url,
            storage_url=self.storage_url,
            project=self.project,
            sandbox_autostart=self.sandbox_autostart,
            sandbox_home=self.sandbox_home,
            token_env=self.token_env,
            jupyterhub_auth_state=self.jupyterhub_auth_state,
        )

    def initialize_settings(self) -> None:
        settings = self.server_settings()
        self.manager = FederationManager(settings, log=self.log)
        if self.export_environment:
            os.environ.update(settings.environment())
        self.settings[MANAGER_SETTING] = self.manager

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes.handler_specs())

    async def stop_extension(self) -> None:
        manager = getattr(self, "manager", None)
        if manager is not None:
            manager.close()
