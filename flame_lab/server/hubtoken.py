"""The user's FLAME access token, fetched from JupyterHub whenever the server extension connects.

Under JupyterHub a single-user server holds ``JUPYTERHUB_API_TOKEN``. When the hub grants that
token the scopes ``read:users:name!user`` and ``admin:auth_state!user`` (see
deploy/jupyterhub/jupyterhub_config.py), ``GET {JUPYTERHUB_API_URL}/users/{name}`` answers the
user's ``auth_state``, where GenericOAuthenticator keeps the FLAME (Authup) tokens it obtained at
login and refreshes them. So no password or token is ever typed into a notebook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from flame_lab.errors import HubAuthError

SCOPES = ("read:users:name!user", "admin:auth_state!user")
_SCOPE_HINT = (
    "The JupyterHub admin must grant the servers' API tokens the scopes "
    + " and ".join(SCOPES)
    + " (c.Spawner.server_token_scopes, and the same on the `user` role), and enable "
    "auth_state (c.Authenticator.enable_auth_state = True)."
)


@dataclass(frozen=True, repr=False)
class JupyterHubAccess:
    """Where this server's hub API is and the token it may use there."""

    api_url: str
    api_token: str
    user: str

    def __repr__(self) -> str:
        return f"JupyterHubAccess(api_url={self.api_url!r}, user={self.user!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JupyterHubAccess | None:
        """The JupyterHub a single-user server was spawned by, or None outside JupyterHub."""
        env = os.environ if env is None else env
        api_url = env.get("JUPYTERHUB_API_URL", "")
        token = env.get("JUPYTERHUB_API_TOKEN", "")
        user = env.get("JUPYTERHUB_USER", "")
        if not (api_url and token and user):
            return None
        return cls(api_url.rstrip("/"), token, user)


def fetch_access_token(access: JupyterHubAccess, timeout: float = 10.0) -> str | None:
    """The FLAME access token in the user's auth_state; None if the login left no token."""
    url = f"{access.api_url}/users/{quote(access.user, safe='')}"
    try:
        response = httpx.get(
            url, headers={"Authorization": f"token {access.api_token}"}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise HubAuthError(
            f"cannot ask JupyterHub for your FLAME login: {type(exc).__name__}",
            hint="Retry in a moment; if it persists, ask the JupyterHub admin.",
        ) from None
    if response.status_code in (401, 403):
        raise HubAuthError(
            f"JupyterHub refused to hand this server your FLAME login ({response.status_code})",
            hint=_SCOPE_HINT,
        )
    if response.status_code != 200:
        raise HubAuthError(
            f"JupyterHub answered {response.status_code} when asked for your FLAME login",
            hint="Log out of JupyterHub and in again; if it persists, ask the admin.",
        )
    try:
        model = response.json()
    except ValueError:
        raise HubAuthError("JupyterHub's user model is not JSON") from None
    if "auth_state" not in model:
        raise HubAuthError(
            "JupyterHub did not include your auth_state in its answer", hint=_SCOPE_HINT
        )
    state = model.get("auth_state") or {}
    token = state.get("access_token") if isinstance(state, dict) else None
    return token if isinstance(token, str) and token else None


def hub_token(env: Mapping[str, str] | None = None, timeout: float = 10.0) -> str | None:
    """A fresh FLAME token from JupyterHub if this server runs under one, else None."""
    access = JupyterHubAccess.from_env(env)
    return fetch_access_token(access, timeout) if access is not None else None
