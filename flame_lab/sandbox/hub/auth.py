"""Who is calling: OAuth2 token grants (password, refresh_token, client_credentials) and
bearer-token checks. Tokens are opaque random strings; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.hub.wire import ApiError, now_iso

ACCESS_TTL = 3600
REFRESH_TTL = 30 * 24 * 3600
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_TOKEN_FIELDS = {
    "grant_type",
    "username",
    "password",
    "refresh_token",
    "client_id",
    "client_secret",
    "scope",
    "realm_id",
}


@dataclass(frozen=True)
class Principal:
    """The caller behind a bearer token: the researcher (user) or a node's robot (client)."""

    kind: str
    id: str
    realm_id: str
    name: str
    node_id: str | None = None

    @property
    def is_user(self) -> bool:
        return self.kind == "user"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, digest = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(got.hex(), digest)


def hash_secret(secret: str) -> str:
    """Client secrets are 256-bit random strings: a plain SHA-256 is enough to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    """Issues and checks tokens against the store; ``clock`` is injectable for expiry tests."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        access_ttl: int = ACCESS_TTL,
        refresh_ttl: int = REFRESH_TTL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    # -- grants ------------------------------------------------------------------------------
    def grant(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer ``POST /auth/token`` with an OAuth2 token response."""
        for name in body:
            if name not in _TOKEN_FIELDS:
                raise ApiError(
                    400, f"{name!r} is not a token request field", code="invalid_request"
                )
        kind = body.get("grant_type")
        if kind == "password":
            subject = self._user_by_password(body.get("username"), body.get("password"))
            return self._issue("user", subject, with_refresh=True)
        if kind == "refresh_token":
            subject_type, subject = self._consume_refresh(body.get("refresh_token"))
            return self._issue(subject_type, subject, with_refresh=True)
        if kind == "client_credentials":
            subject = self._client_by_secret(body.get("client_id"), body.get("client_secret"))
            return self._issue("client", subject, with_refresh=False)
        raise ApiError(
            400,
            "grant_type must be password, refresh_token or client_credentials",
            code="unsupported_grant_type",
        )

    def _user_by_password(self, username: Any, password: Any) -> str:
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError(400, "username and password are required", code="invalid_request")
        users = self.store.select("users", name=username)
        stored = self.store.execute(
            'SELECT "passwordHash" FROM users WHERE "name" = ?', (username,)
        )
        if not users or not users[0]["active"] or not verify_password(password, stored[0][0]):
            raise ApiError(400, "the user name or password is wrong", code="invalid_grant")
        return users[0]["id"]

    def _client_by_secret(self, client_id: Any, secret: Any) -> str:
        if not isinstance(client_id, str) or not isinstance(secret, str):
            raise ApiError(400, "client_id and client_secret are required", code="invalid_request")
        rows = self.store.execute(
            'SELECT "secretHash", "active" FROM clients WHERE "id" = ?', (client_id,)
        )
        if (
            not rows
            or not rows[0]["active"]
            or not hmac.compare_digest(rows[0]["secretHash"] or "", hash_secret(secret))
        ):
            raise ApiError(401, "the client id or secret is wrong", code="invalid_client")
        return client_id

    def _consume_refresh(self, token: Any) -> tuple[str, str]:
        if not isinstance(token, str):
            raise ApiError(400, "refresh_token is required", code="invalid_request")
        digest = _token_hash(token)
        with self.store.transaction():
            rows = self.store.execute(
                'SELECT * FROM tokens WHERE "hash" = ? AND "kind" = ?', (digest, "refresh")
            )
            if not rows or rows[0]["expiresAt"] <= self.clock():
                raise ApiError(400, "the refresh token is invalid or expired", code="invalid_grant")
            self.store.execute('DELETE FROM tokens WHERE "hash" = ?', (digest,))
        return rows[0]["subjectType"], rows[0]["subjectId"]

    def _store_token(self, kind: str, subject_type: str, subject: str, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        self.store.execute(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
            (_token_hash(token), kind, subject_type, subject, self.clock() + ttl, now_iso()),
        )
        return token

    def _issue(self, subject_type: str, subject: str, *, with_refresh: bool) -> dict[str, Any]:
        with self.store.transaction():
            self.store.execute('DELETE FROM tokens WHERE "expiresAt" <= ?', (self.clock(),))
            answer: dict[str, Any] = {
                "access_token": self._store_token("access", subject_type, subject, self.access_ttl),
                "expires_in": self.access_ttl,
                "token_type": "Bearer",
                "scope": "global",
            }
            if with_refresh:
                answer["refresh_token"] = self._store_token(
                    "refresh", subject_type, subject, self.refresh_ttl
                )
        return answer

    # -- checks ------------------------------------------------------------------------------
    def authenticate(self, header: str | None) -> Principal:
        """The principal behind an ``Authorization: Bearer`` header, or a 401."""
        if not header or not header.startswith("Bearer "):
            raise ApiError(401, "this route needs a bearer token", code="unauthorized")
        rows = self.store.execute(
            'SELECT * FROM tokens WHERE "hash" = ? AND "kind" = ?',
            (_token_hash(header[len("Bearer ") :].strip()), "access"),
        )
        if not rows or rows[0]["expiresAt"] <= self.clock():
            raise ApiError(401, "the bearer token is invalid or expired", code="invalid_token")
        return self.principal(rows[0]["subjectType"], rows[0]["subjectId"])

    def principal(self, subject_type: str, subject: str) -> Principal:
        if subject_type == "user":
            user = self.store.require("users", subject)
            return Principal("user", subject, user["realmId"], user["name"])
        client = self.store.require("clients", subject)
        nodes = self.store.select("nodes", clientId=subject)
        return Principal(
            "client", subject, client["realmId"], client["name"], nodes[0]["id"] if nodes else None
        )
