"""JupyterHub for a research group on FLAME: log in with the FLAME (Authup) account, work in
JupyterLab with flame_lab, submit analyses without ever typing a password or token.

Login is OAuth2's authorization-code flow against the FLAME auth service (GenericOAuthenticator).
The FLAME tokens it obtains stay in the hub's encrypted ``auth_state`` (JUPYTERHUB_CRYPT_KEY);
each user's server fetches a fresh access token from the hub API when it connects
(flame_lab/server/hubtoken.py), using the scopes granted below. Researcher keys live in each
user's home, never in the hub.

Set in the hub's environment:
  FLAME_AUTH_URL, FLAME_CORE_URL, FLAME_STORAGE_URL  the FLAME APIs (or FLAME_HUB_URL for a
                                                      self-hosted hub serving /auth /core /storage)
  FLAME_PROJECT                                       optional: the project analyses go to
  OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OAUTH_CALLBACK_URL   the OAuth client registered at
                                                      FLAME for https://<jupyterhub>/hub/oauth_callback
  JUPYTERHUB_CRYPT_KEY                                `openssl rand -hex 32`: encrypts auth_state
  FLAME_JHUB_ALLOWED_USERS                            optional, comma-separated; else any FLAME user
"""

import os

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)


def _flame_urls() -> dict[str, str]:
    base = os.environ.get("FLAME_HUB_URL", "").rstrip("/")
    urls = {
        name: os.environ.get(f"FLAME_{name.upper()}_URL", "").rstrip("/")
        or (f"{base}/{name}" if base else "")
        for name in ("auth", "core", "storage")
    }
    missing = [f"FLAME_{k.upper()}_URL" for k, v in urls.items() if not v]
    if missing:
        raise SystemExit("jupyterhub_config.py: set FLAME_HUB_URL or " + ", ".join(missing))
    return urls


FLAME = _flame_urls()

# -- login through FLAME's identity provider ------------------------------------------------
c.JupyterHub.authenticator_class = "generic-oauth"
c.GenericOAuthenticator.login_service = "FLAME"
c.GenericOAuthenticator.authorize_url = f"{FLAME['auth']}/authorize"
c.GenericOAuthenticator.token_url = f"{FLAME['auth']}/token"
c.GenericOAuthenticator.userdata_url = f"{FLAME['auth']}/users/@me"
c.GenericOAuthenticator.username_claim = "name"
c.GenericOAuthenticator.scope = os.environ.get("FLAME_OAUTH_SCOPE", "global").split()
c.GenericOAuthenticator.enable_auth_state = True  # keep FLAME's tokens (encrypted) for servers
c.GenericOAuthenticator.auth_refresh_age = 300  # re-check (and refresh) tokens every 5 min
c.GenericOAuthenticator.refresh_pre_spawn = True
allowed = [u.strip() for u in os.environ.get("FLAME_JHUB_ALLOWED_USERS", "").split(",")]
if any(allowed):
    c.GenericOAuthenticator.allowed_users = {u for u in allowed if u}
else:
    c.GenericOAuthenticator.allow_all = True  # any account of the FLAME realm

# -- let each server read its own user's FLAME token, and nothing more -----------------------
AUTH_STATE_SCOPES = ["read:users:name!user", "admin:auth_state!user"]
c.JupyterHub.load_roles = [
    # A server's token gets only scopes its user holds, so users hold their own auth_state.
    {"name": "user", "scopes": ["self", "admin:auth_state!user"]},
]
c.Spawner.server_token_scopes = [
    "users:activity!user",
    "access:servers!server",
    *AUTH_STATE_SCOPES,
]

# -- every server has flame_lab, pointed at this FLAME ---------------------------------------
c.Spawner.default_url = "/lab"
c.Spawner.args = ["--ServerApp.jpserver_extensions=flame_lab=True"]
if os.environ.get("FLAME_PROJECT"):
    c.Spawner.args.append(f"--FlameLab.project={os.environ['FLAME_PROJECT']}")
c.Spawner.environment = {
    "FLAME_LAB_CORE_URL": FLAME["core"],
    "FLAME_LAB_AUTH_URL": FLAME["auth"],
    "FLAME_LAB_STORAGE_URL": FLAME["storage"],
}
