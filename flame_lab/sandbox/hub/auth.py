"""Who is calling: OAuth2 token grants (password, refresh_token, client_credentials,
authorization_code) and bearer-token checks. Tokens are opaque random strings; only their
SHA-256 is stored. Authorization codes and pending logins live in memory for minutes only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.hub.throttle import Throttle
from flame_lab.sandbox.hub.wire import ApiError, now_iso
from flame_lab.security.keyfile import ARGON2_DEFAULT

ACCESS_TTL = 3600
REFRESH_TTL = 30 * 24 * 3600
CODE_TTL = 60  # an authorization code is exchanged at once by the client's callback
LOGIN_TTL = 600  # a login form stays valid this long
OAUTH_GRANTS = "authorization_code refresh_token"
_LEGACY_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # hashes written by flame_lab before 0.x
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
    admin: bool = False

    @property
    def is_user(self) -> bool:
        return self.kind == "user"


@dataclass(frozen=True, repr=False)
class AuthorizationRequest:
    """What a client asked ``GET /auth/authorize`` for, kept server-side while the user logs in."""

    client_id: str
    client_name: str
    redirect_uri: str
    state: str
    scope: str
    code_challenge: str | None
    expires_at: float

    def __repr__(self) -> str:
        return f"AuthorizationRequest(client={self.client_name!r})"


@dataclass(frozen=True, repr=False)
class _Code:
    client_id: str
    redirect_uri: str
    user_id: str
    code_challenge: str | None
    expires_at: float


@dataclass(frozen=True, repr=False)
class OAuthClient:
    """A web application allowed to log researchers in (e.g. a JupyterHub); secret shown once."""

    client_id: str
    client_secret: str
    redirect_uri: str

    def __repr__(self) -> str:
        return f"OAuthClient(client_id={self.client_id!r}, redirect_uri={self.redirect_uri!r})"


# One derivation at a time: concurrent Argon2id derivations with several lanes (logins of
# several researchers at once, run in the IO loop's executor) hang or fail with MemoryError
# in OpenSSL; serialised, each takes its usual fraction of a second.
_KDF_LOCK = threading.Lock()


def _argon2(password: str, salt: bytes, memory: int, iterations: int, lanes: int) -> bytes:
    kdf = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory)
    with _KDF_LOCK:
        return kdf.derive(password.encode("utf-8", "surrogatepass"))


def hash_password(password: str) -> str:
    """Argon2id with the key files' own parameters (64 MiB, 3 passes, 4 lanes)."""
    salt = secrets.token_bytes(16)
    m, t, p = ARGON2_DEFAULT["memoryKiB"], ARGON2_DEFAULT["iterations"], ARGON2_DEFAULT["lanes"]
    digest = _argon2(password, salt, m, t, p)
    return f"argon2id$m={m},t={t},p={p}${salt.hex()}${digest.hex()}"


def _parse_argon2(stored: str) -> tuple[int, int, int, bytes, str] | None:
    try:
        _, params, salt, digest = stored.split("$")
        values = dict(item.split("=") for item in params.split(","))
        return int(values["m"]), int(values["t"]), int(values["p"]), bytes.fromhex(salt), digest
    except (ValueError, KeyError):
        return None


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches; hashes of older sandboxes (scrypt) still verify."""
    if stored and stored.startswith("argon2id$"):
        parsed = _parse_argon2(stored)
        if parsed is None:
            return False
        m, t, p, salt, digest = parsed
        return hmac.compare_digest(_argon2(password, salt, m, t, p).hex(), digest)
    if stored and stored.startswith("scrypt$"):
        _, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_LEGACY_SCRYPT)
        return hmac.compare_digest(got.hex(), digest)
    return False


def needs_rehash(stored: str | None) -> bool:
    """A hash weaker than what hash_password writes now (upgraded at the next login)."""
    if not stored or not stored.startswith("argon2id$"):
        return True
    parsed = _parse_argon2(stored)
    return (
        parsed is None
        or parsed[0] < ARGON2_DEFAULT["memoryKiB"]
        or (parsed[1] < ARGON2_DEFAULT["iterations"])
    )


_DUMMY: list[str] = []


def dummy_hash() -> str:
    """A hash no password matches, checked for unknown users so that a login for a name that
    does not exist costs as long as one for a name that does."""
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(32)))
    return _DUMMY[0]


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
        throttle_loopback: bool = False,
    ) -> None:
        self.store = store
        self.clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.throttle = Throttle(clock, count_loopback=throttle_loopback)
        self._logins: dict[str, AuthorizationRequest] = {}  # nonce hash -> pending login
        self._codes: dict[str, _Code] = {}  # code hash -> what it may be exchanged for

    # -- grants ------------------------------------------------------------------------------
    def grant(self, body: dict[str, Any], address: str = "") -> dict[str, Any]:
        """Answer ``POST /auth/token`` with an OAuth2 token response (``address``: the
        caller's, for slowing down password guessing)."""
        if body.get("grant_type") == "authorization_code":
            return self._exchange_code(body)
        for name in body:
            if name not in _TOKEN_FIELDS:
                raise ApiError(
                    400, f"{name!r} is not a token request field", code="invalid_request"
                )
        kind = body.get("grant_type")
        if kind == "password":
            subject = self._user_by_password(body.get("username"), body.get("password"), address)
            return self._issue("user", subject, with_refresh=True)
        if kind == "refresh_token":
            subject_type, subject = self._consume_refresh(body.get("refresh_token"))
            return self._issue(subject_type, subject, with_refresh=True)
        if kind == "client_credentials":
            subject = self._client_by_secret(body.get("client_id"), body.get("client_secret"))
            return self._issue("client", subject, with_refresh=False)
        raise ApiError(
            400,
            "grant_type must be password, refresh_token, client_credentials or authorization_code",
            code="unsupported_grant_type",
        )

    def _user_by_password(self, username: Any, password: Any, address: str = "") -> str:
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError(400, "username and password are required", code="invalid_request")
        keys = self.throttle.keys(username, address)
        self.throttle.check(keys)
        rows = self.store.execute(
            'SELECT "id", "active", "passwordHash" FROM users WHERE "name" = ?', (username,)
        )
        stored = rows[0]["passwordHash"] if rows else None
        # unknown users are checked against a dummy hash: the same work, the same answer
        matches = verify_password(password, stored or dummy_hash()) and stored is not None
        if not rows or not rows[0]["active"] or not matches:
            self.throttle.failed(keys)
            raise ApiError(400, "The user credentials are invalid.", code="invalid_grant")
        self.throttle.succeeded(keys)
        if needs_rehash(stored):
            self.store.execute(
                'UPDATE users SET "passwordHash" = ? WHERE "id" = ?',
                (hash_password(password), rows[0]["id"]),
            )
        return rows[0]["id"]

    def _client_by_secret(self, client_id: Any, secret: Any) -> str:
        if not isinstance(client_id, str) or not isinstance(secret, str):
            raise ApiError(400, "client_id and client_secret are required", code="invalid_request")
        self._check_client(client_id, secret, "client_credentials")
        return client_id

    def _check_client(self, client_id: str, secret: str, grant: str) -> None:
        rows = self.store.execute(
            'SELECT "secretHash", "active", "grantTypes" FROM clients WHERE "id" = ?', (client_id,)
        )
        if (
            not rows
            or not rows[0]["active"]
            or not hmac.compare_digest(rows[0]["secretHash"] or "", hash_secret(secret))
        ):
            raise ApiError(401, "Client authentication failed.", code="invalid_client")
        # a client created without grant types may use client_credentials, as on Authup
        allowed = (rows[0]["grantTypes"] or "client_credentials").split()
        if grant not in allowed:
            raise ApiError(
                400, f"this client may not use the {grant} grant", code="unauthorized_client"
            )

    def _consume_refresh(self, token: Any) -> tuple[str, str]:
        if not isinstance(token, str):
            raise ApiError(400, "refresh_token is required", code="invalid_request")
        digest = _token_hash(token)
        with self.store.transaction():
            rows = self.store.execute(
                'SELECT * FROM tokens WHERE "hash" = ? AND "kind" = ?', (digest, "refresh")
            )
            if not rows or rows[0]["expiresAt"] <= self.clock():
                raise ApiError(400, "The JWT is invalid.", code="invalid_grant")
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

    # -- authorization-code flow (what JupyterHub's GenericOAuthenticator drives) ------------
    def begin_authorization(self, args: dict[str, str]) -> tuple[str, AuthorizationRequest]:
        """Check ``GET /auth/authorize``'s query; remember it under a fresh login nonce."""
        if args.get("response_type") != "code":
            raise ApiError(400, "response_type must be code", code="unsupported_response_type")
        client_id, redirect_uri = args.get("client_id", ""), args.get("redirect_uri", "")
        rows = self.store.execute(
            'SELECT "name", "redirectUri", "active", "grantTypes" FROM clients WHERE "id" = ?',
            (client_id,),
        )
        if not rows or not rows[0]["active"]:
            raise ApiError(400, "unknown client_id", code="invalid_client")
        if "authorization_code" not in (rows[0]["grantTypes"] or "").split():
            raise ApiError(400, "this client may not log users in", code="unauthorized_client")
        if not redirect_uri or redirect_uri not in (rows[0]["redirectUri"] or "").split():
            raise ApiError(400, "redirect_uri is not registered for this client")
        method = args.get("code_challenge_method", "S256" if args.get("code_challenge") else "")
        if method not in ("", "S256"):
            raise ApiError(400, "code_challenge_method must be S256", code="invalid_request")
        request = AuthorizationRequest(
            client_id,
            rows[0]["name"],
            redirect_uri,
            args.get("state", ""),
            args.get("scope", ""),
            args.get("code_challenge") or None,
            self.clock() + LOGIN_TTL,
        )
        self._sweep()
        nonce = secrets.token_urlsafe(24)
        self._logins[_token_hash(nonce)] = request
        return nonce, request

    def pending(self, nonce: str) -> AuthorizationRequest:
        """The authorization request a login form's nonce stands for, or a 400."""
        request = self._logins.get(_token_hash(nonce or ""))
        if request is None or request.expires_at <= self.clock():
            raise ApiError(
                400, "this login form has expired; start the login again", code="invalid_request"
            )
        return request

    def complete_authorization(
        self, nonce: str, username: Any, password: Any, address: str = ""
    ) -> str:
        """Log the user in for the pending request; the redirect URL carrying a one-time code."""
        request = self.pending(nonce)
        user_id = self._user_by_password(username, password, address)
        del self._logins[_token_hash(nonce)]
        code = secrets.token_urlsafe(32)
        self._codes[_token_hash(code)] = _Code(
            request.client_id,
            request.redirect_uri,
            user_id,
            request.code_challenge,
            self.clock() + CODE_TTL,
        )
        query = {"code": code, **({"state": request.state} if request.state else {})}
        separator = "&" if "?" in request.redirect_uri else "?"
        return request.redirect_uri + separator + urlencode(query)

    def _exchange_code(self, body: dict[str, Any]) -> dict[str, Any]:
        client_id, secret = body.get("client_id"), body.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(secret, str):
            raise ApiError(401, "client authentication is required", code="invalid_client")
        self._check_client(client_id, secret, "authorization_code")
        code = self._codes.pop(_token_hash(str(body.get("code", ""))), None)
        if code is None or code.expires_at <= self.clock() or code.client_id != client_id:
            raise ApiError(400, "the authorization code is invalid or used", code="invalid_grant")
        if body.get("redirect_uri") != code.redirect_uri:
            raise ApiError(400, "redirect_uri differs from the authorize request", "invalid_grant")
        if code.code_challenge is not None:
            verifier = str(body.get("code_verifier", ""))
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not verifier or not hmac.compare_digest(expected, code.code_challenge):
                raise ApiError(400, "the PKCE code_verifier does not match", "invalid_grant")
        return self._issue("user", code.user_id, with_refresh=True)

    def _sweep(self) -> None:
        now = self.clock()
        for table in (self._logins, self._codes):
            for key in [k for k, v in table.items() if v.expires_at <= now]:
                del table[key]

    # -- checks ------------------------------------------------------------------------------
    def authenticate(self, header: str | None) -> Principal:
        """The principal behind an ``Authorization: Bearer`` header, or a 401."""
        if not header or not header.startswith("Bearer "):
            raise ApiError(401, "this route needs a bearer token", code="unauthorized")
        rows = self.store.execute(
            'SELECT * FROM tokens WHERE "hash" = ? AND "kind" = ?',
            (_token_hash(header[len("Bearer ") :].strip()), "access"),
        )
        if not rows:  # as Authup answers a token that is not one of its JWTs
            raise ApiError(400, "The JWT is invalid.", code="invalid_token")
        if rows[0]["expiresAt"] <= self.clock():
            raise ApiError(401, "The JWT is expired.", code="invalid_token")
        return self.principal(rows[0]["subjectType"], rows[0]["subjectId"])

    def principal(self, subject_type: str, subject: str) -> Principal:
        if subject_type == "user":
            user = self.store.require("users", subject)
            admin = is_admin(self.store, subject)
            return Principal("user", subject, user["realmId"], user["name"], admin=admin)
        client = self.store.require("clients", subject)
        nodes = self.store.select("nodes", clientId=subject)
        return Principal(
            "client", subject, client["realmId"], client["name"], nodes[0]["id"] if nodes else None
        )


# -- accounts (called by provisioning and tests, on a Store the hub may be serving) ---------
ADMIN_ROLE = "admin"


def is_admin(store: Store, user_id: str) -> bool:
    """Whether the user holds the ``admin`` role (of any realm: the sandbox has one)."""
    return bool(
        store.execute(
            'SELECT 1 FROM user_roles ur JOIN roles r ON r."id" = ur."roleId"'
            ' WHERE ur."userId" = ? AND r."name" = ?',
            (user_id, ADMIN_ROLE),
        )
    )


def grant_admin(store: Store, user_id: str) -> None:
    """Give a user the ``admin`` role (created on first use)."""
    with store.transaction():
        user = store.require("users", user_id, "user")
        roles = store.select("roles", name=ADMIN_ROLE)
        role = (
            roles[0]
            if roles
            else store.insert(
                "roles",
                {
                    "name": ADMIN_ROLE,
                    "displayName": "Administrator",
                    "description": "May see and change every record of the sandbox hub",
                    "realmId": user["realmId"],
                },
            )
        )
        if not store.select("user-roles", userId=user_id, roleId=role["id"]):
            store.insert(
                "user-roles",
                {
                    "userId": user_id,
                    "roleId": role["id"],
                    "userRealmId": user["realmId"],
                    "roleRealmId": role["realmId"],
                },
            )


def _realm_id(store: Store) -> str:
    realms = store.select("realms")
    if not realms:
        raise ApiError(409, "the sandbox is not provisioned yet", code="conflict")
    return realms[0]["id"]


def add_researcher(store: Store, name: str, password: str | None = None) -> str:
    """Create a researcher account that may log in; returns its password (generated if None)."""
    if not name or store.select("users", name=name):
        raise ApiError(409, f"a user named {name!r} exists already", code="conflict")
    password = password or secrets.token_urlsafe(18)
    with store.transaction():
        store.insert(
            "users",
            {
                "name": name,
                "displayName": name,
                "active": True,
                "nameLocked": True,
                "realmId": _realm_id(store),
                "passwordHash": hash_password(password),
            },
        )
    return password


def add_oauth_client(store: Store, name: str, redirect_uri: str) -> OAuthClient:
    """Register a web application for the authorization-code flow (space-separated URIs)."""
    secret = secrets.token_urlsafe(32)
    with store.transaction():
        client = store.insert(
            "clients",
            {
                "name": name,
                "builtIn": False,
                "displayName": name,
                "redirectUri": redirect_uri,
                "active": True,
                "secretHashed": True,
                "grantTypes": OAUTH_GRANTS,
                "secretEncrypted": False,
                "authMethod": "secret",
                "tokenBindingMethod": "none",
                "realmId": _realm_id(store),
                "secretHash": hash_secret(secret),
            },
        )
    return OAuthClient(client["id"], secret, redirect_uri)
