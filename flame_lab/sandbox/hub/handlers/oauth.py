"""The sandbox's OAuth2 / OpenID login for web applications, on Authup's paths under ``/auth``.

``GET /auth/authorize`` shows a login form, ``POST /auth/authorize`` checks the password and
redirects with a one-time code, ``POST /auth/token`` exchanges it (client secret in the body or
HTTP Basic), ``GET /auth/users/@me`` says who a token belongs to, and
``GET /auth/.well-known/openid-configuration`` lists these endpoints.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
from urllib.parse import unquote

from tornado.ioloop import IOLoop

from flame_lab.sandbox.hub.handlers.auth import TokenHandler as PasswordTokenHandler
from flame_lab.sandbox.hub.handlers.base import HubHandler
from flame_lab.sandbox.hub.limits import MAX_TOKEN_BYTES
from flame_lab.sandbox.hub.wire import ApiError

NONCE_COOKIE = "flame_lab_login"
_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - flame_lab sandbox</title></head>
<body>
<h1>Sign in to the flame_lab sandbox</h1>
<p>{client} asks to act as you on this FLAME Hub.</p>
{error}
<form method="post" action="{action}">
<input type="hidden" name="nonce" value="{nonce}">
<label>User name <input name="username" autocomplete="username" value="{username}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>
</body></html>
"""


class AuthorizeHandler(HubHandler):
    """The login page of the authorization-code flow, guarded by a nonce in form and cookie."""

    public = True
    body_limit = MAX_TOKEN_BYTES

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy", "default-src 'none'; form-action 'self'")

    def get(self) -> None:
        args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        nonce, request = self.hub.auth.begin_authorization(args)
        self.set_cookie(NONCE_COOKIE, nonce, httponly=True, samesite="Lax", path="/auth/")
        self._form(nonce, request.client_name)

    async def post(self) -> None:
        form = self.form_body()
        nonce = form.get("nonce", "")
        # Double submit: the nonce in the form must be the one this browser was given.
        if not nonce or self.get_cookie(NONCE_COOKIE) != nonce:
            raise ApiError(400, "the login form does not belong to this browser session")
        request = self.hub.auth.pending(nonce)
        try:
            location = await IOLoop.current().run_in_executor(
                None,
                self.hub.auth.complete_authorization,
                nonce,
                form.get("username"),
                form.get("password"),
                self.request.remote_ip or "",
            )
        except ApiError as exc:
            if exc.code != "invalid_grant":
                raise
            self.set_status(401)
            self._form(nonce, request.client_name, form.get("username", ""), exc.message)
            return
        self.clear_cookie(NONCE_COOKIE, path="/auth/")
        self.redirect(location)

    def _form(self, nonce: str, client: str, username: str = "", error: str = "") -> None:
        self.finish(
            _FORM.format(
                client=html.escape(client),
                action=html.escape(self.request.path),
                nonce=html.escape(nonce),
                username=html.escape(username),
                error=f'<p role="alert">{html.escape(error)}</p>' if error else "",
            )
        )

    def write_error(self, status_code: int, **kwargs: object) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]  # type: ignore[index]
        message = exc.message if isinstance(exc, ApiError) else (self._reason or "error")
        self.set_status(exc.status if isinstance(exc, ApiError) else status_code)
        self.finish(f"<!doctype html><p>Cannot sign in: {html.escape(message)}</p>")


class TokenHandler(PasswordTokenHandler):
    """``POST /auth/token``, also taking client credentials from HTTP Basic (RFC 6749 2.3.1)."""

    def check_request(self) -> None:
        super().check_request()
        header = self.request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return
        try:
            decoded = base64.b64decode(header[len("Basic ") :], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "the Basic credentials are malformed", "invalid_client") from None
        client_id, _, secret = decoded.partition(":")
        self.basic_client = (unquote(client_id), unquote(secret))

    async def post(self) -> None:
        body = self.token_body()
        basic = getattr(self, "basic_client", None)
        if basic is not None:
            body["client_id"], body["client_secret"] = basic
        await self.grant(body)


class MeHandler(HubHandler):
    """``GET /auth/users/@me``: the user behind the bearer token (Authup's userinfo)."""

    def get(self) -> None:
        if not self.principal.is_user:
            raise ApiError(403, "only a user token has a user behind it")
        user = self.hub.render("users", self.hub.store.require("users", self.principal.id))
        # OpenID Connect's standard claims, beside Authup's own fields.
        user.update({"sub": user["id"], "preferred_username": user["name"]})
        self.finish(json.dumps(user))


class DiscoveryHandler(HubHandler):
    """``GET /auth/.well-known/openid-configuration``: where the login endpoints are."""

    public = True

    def get(self) -> None:
        base = f"{self.request.protocol}://{self.request.host}/auth"
        self.finish(
            json.dumps(
                {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token",
                    "userinfo_endpoint": f"{base}/users/@me",
                    "response_types_supported": ["code"],
                    "grant_types_supported": [
                        "authorization_code",
                        "refresh_token",
                        "password",
                        "client_credentials",
                    ],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_basic",
                        "client_secret_post",
                    ],
                    "subject_types_supported": ["public"],
                    "scopes_supported": ["openid", "global"],
                }
            )
        )
