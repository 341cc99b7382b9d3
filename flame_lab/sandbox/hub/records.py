"""Plain records that only an admin writes: Authup's realms, users, clients, roles, permissions
and their links, and the Hub's container registries with their projects. No lifecycle, just
checked fields, unique names and tidy deletes; every user may read the auth records, only an
admin the registries (they hold secrets)."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from flame_lab.sandbox.hub.access import Access
from flame_lab.sandbox.hub.auth import Principal, hash_password, hash_secret
from flame_lab.sandbox.hub.limits import validate_body
from flame_lab.sandbox.hub.resources import MAX_TEXT, Spec
from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.hub.wire import ApiError

_UUID = Spec("uuid")
_REQ_UUID = Spec("uuid", required=True, nullable=False)
_NAME = Spec("str", required=True, nullable=False)
_SET_NAME = Spec("str", nullable=False)
_LABEL = Spec("str")
_TEXT = Spec("str", max_len=MAX_TEXT, is_name=False)
_BOOL = Spec("bool")
_SET_BOOL = Spec("bool", nullable=False)
_SECRET = Spec("str", max_len=1024, is_name=False)
_AUTH_METHODS = ("secret", "none", "private_key_jwt")
_BINDINGS = ("none", "dpop", "mtls")
REGISTRY_PROJECT_TYPES = ("default", "aggregator", "incoming", "outgoing", "masterImages", "node")


def _both(create: dict[str, Spec]) -> dict[str, dict[str, Spec]]:
    """Create takes the fields as given; update takes each as optional (names never null)."""
    update = {
        k: replace(v, required=False, nullable=v.nullable and not v.required)
        for k, v in create.items()
    }
    return {"create": create, "update": update}


_CLIENT = {
    "name": _NAME,
    "secret": _SECRET,
    "displayName": _LABEL,
    "description": _TEXT,
    "redirectUri": _TEXT,
    "active": _BOOL,
    "isConfidential": _BOOL,
    "secretHashed": _BOOL,
    "grantTypes": _LABEL,
    "authMethod": Spec("str", choices=_AUTH_METHODS),
    "tokenBindingMethod": Spec("str", choices=_BINDINGS),
    "backchannelLogoutUri": _TEXT,
    "postLogoutRedirectUri": _TEXT,
    "realmId": _UUID,
}
_USER = {
    "name": _NAME,
    "displayName": _LABEL,
    "email": _LABEL,
    "active": _BOOL,
    "nameLocked": _BOOL,
    "firstName": _LABEL,
    "lastName": _LABEL,
    "realmId": _UUID,
}
BODIES: dict[str, dict[str, dict[str, Spec]]] = {
    "realms": _both({"name": _NAME, "displayName": _LABEL, "description": _TEXT}),
    "users": {
        **_both(_USER),
        "update": {**_both(_USER)["update"], "password": _SECRET},
    },
    "clients": _both(_CLIENT),
    "roles": _both({"name": _NAME, "displayName": _LABEL, "description": _TEXT}),
    "permissions": _both(
        {
            "name": _NAME,
            "displayName": _LABEL,
            "description": _TEXT,
            "realmId": _UUID,
            "policyId": _UUID,
        }
    ),
    "role-permissions": {"create": {"roleId": _REQ_UUID, "permissionId": _REQ_UUID}},
    "user-permissions": {"create": {"userId": _REQ_UUID, "permissionId": _REQ_UUID}},
    "user-roles": {"create": {"userId": _REQ_UUID, "roleId": _REQ_UUID}},
    "registries": _both(
        {"name": _NAME, "host": _NAME, "accountName": _LABEL, "accountSecret": _SECRET}
    ),
    "registry-projects": _both(
        {
            "name": _NAME,
            "type": Spec("str", required=True, nullable=False, choices=REGISTRY_PROJECT_TYPES),
            "registryId": _REQ_UUID,
            "externalName": _NAME,
            "accountName": _LABEL,
            "accountSecret": _SECRET,
        }
    ),
}
# resource -> the field that must be unique, and where it must be (None: everywhere)
_UNIQUE = {"realms": "name", "users": "name", "roles": "name", "clients": "name"}
# link resource -> (field, target resource, realm field to copy) for each end
_LINKS = {
    "role-permissions": (
        ("roleId", "roles", "roleRealmId"),
        ("permissionId", "permissions", "permissionRealmId"),
    ),
    "user-permissions": (
        ("userId", "users", "userRealmId"),
        ("permissionId", "permissions", "permissionRealmId"),
    ),
    "user-roles": (("userId", "users", "userRealmId"), ("roleId", "roles", "roleRealmId")),
}
CREDENTIALS = {"secret": _SECRET, "name": _SET_NAME, "displayName": _SET_NAME}


def robot_client(store: Store, name: str, realm_id: str) -> dict[str, Any]:
    """A node's or analysis's robot client (client_credentials) with a secret nobody knows
    until its owner sets one through the client-credentials route."""
    return store.insert(
        "clients",
        {
            "name": name,
            "builtIn": False,
            "displayName": name,
            "active": True,
            "secretHashed": True,
            "grantTypes": "client_credentials",
            "secretEncrypted": False,
            "authMethod": "secret",
            "tokenBindingMethod": "none",
            "realmId": realm_id,
            "secretHash": hash_secret(secrets.token_urlsafe(32)),
        },
    )


# fields a user may change on their own account
_SELF_SERVICE = {"displayName", "email", "firstName", "lastName", "password"}


class Records:
    """Create, update and delete of the plain records, for admins (users: also themselves)."""

    def __init__(self, store: Store, access: Access) -> None:
        self.store = store
        self.access = access

    @staticmethod
    def serves(name: str, action: str) -> bool:
        return action in BODIES.get(name, {}) or (action == "delete" and name in BODIES)

    def _realm(self, p: Principal) -> str:
        return p.realm_id

    def _unique(self, name: str, body: dict[str, Any], own_id: str | None = None) -> None:
        field = _UNIQUE.get(name)
        if field is None or field not in body:
            return
        for other in self.store.select(name, **{field: body[field]}):
            if other["id"] != own_id:
                raise ApiError(409, f"a record of {name} named {body[field]!r} exists already")

    def create(self, name: str, p: Principal, body: Any) -> dict[str, Any]:
        self.access.require_admin(p, f"create {name}")
        fields = validate_body(body, BODIES[name]["create"])
        self._unique(name, fields)
        with self.store.transaction():
            return self.store.insert(name, self._fill(name, p, fields))

    def _fill(self, name: str, p: Principal, fields: dict[str, Any]) -> dict[str, Any]:
        """The stored record for a create: realm ids, defaults, the secret only as a hash."""
        record = dict(fields)
        if name in ("users", "clients", "roles", "permissions"):
            record["realmId"] = record.get("realmId") or self._realm(p)
            if record["realmId"] is not None:
                self.store.require("realms", record["realmId"], "realm")
        if name == "realms":
            record["builtIn"] = False
        elif name == "users":
            record.setdefault("active", True)
            record.setdefault("nameLocked", False)
            record["displayName"] = record.get("displayName") or record["name"]
        elif name == "clients":
            record.pop("isConfidential", None)
            secret = record.pop("secret", None) or secrets.token_urlsafe(32)
            record.update(
                builtIn=False,
                secretHashed=True,
                secretEncrypted=False,
                secretHash=hash_secret(secret),
                active=record.get("active", True) is not False,
                displayName=record.get("displayName") or record["name"],
                authMethod=record.get("authMethod") or "secret",
                tokenBindingMethod=record.get("tokenBindingMethod") or "none",
            )
        elif name == "permissions":
            record["builtIn"] = False
        elif name == "registry-projects":
            registry = self.store.require("registries", record["registryId"], "registry")
            record.update(public=record["type"] != "default" and False, registryId=registry["id"])
            record["realmId"] = p.realm_id
        for field, target, realm_field in _LINKS.get(name, ()):
            linked = self.store.require(target, record[field], target.rstrip("s"))
            record[realm_field] = linked.get("realmId")
        if name in _LINKS:
            if self.store.select(name, **{f: record[f] for f, _, _ in _LINKS[name]}):
                raise ApiError(409, f"this {name.rstrip('s')} exists already")
        return record

    def update(self, name: str, p: Principal, record_id: str, body: Any) -> dict[str, Any]:
        record = self.store.require(name, record_id)
        fields = validate_body(body, BODIES[name]["update"])
        own = name == "users" and p.is_user and p.id == record_id
        if not (p.admin or (own and set(fields) <= _SELF_SERVICE)):
            self.access.require_admin(p, f"change {name}")
        self._unique(name, fields, record_id)
        if name == "users" and "password" in fields:
            password = fields.pop("password")
            fields["passwordHash"] = hash_password(password) if password else None
        if name == "clients":
            fields.pop("isConfidential", None)
            fields.pop("secretHashed", None)
            if "secret" in fields:
                secret = fields.pop("secret") or secrets.token_urlsafe(32)
                fields["secretHash"] = hash_secret(secret)
        if not fields:
            return record
        return self.store.update(name, record_id, fields)

    def delete(self, name: str, p: Principal, record_id: str) -> dict[str, Any]:
        self.access.require_admin(p, f"delete {name}")
        record = self.store.require(name, record_id)
        with self.store.transaction():
            if name == "realms":
                if record["builtIn"]:
                    raise ApiError(400, "the built-in master realm cannot be deleted")
            elif name == "users":
                if record_id == p.id:
                    raise ApiError(400, "an admin cannot delete their own account")
                self.store.delete("user-roles", userId=record_id)
                self.store.delete("user-permissions", userId=record_id)
                self.store.execute('DELETE FROM tokens WHERE "subjectId" = ?', (record_id,))
            elif name == "clients":
                if self.store.select("nodes", clientId=record_id):
                    raise ApiError(400, "this client is a node's robot: delete the node instead")
                self.store.execute('DELETE FROM tokens WHERE "subjectId" = ?', (record_id,))
            elif name == "roles":
                self.store.delete("user-roles", roleId=record_id)
                self.store.delete("role-permissions", roleId=record_id)
            elif name == "permissions":
                self.store.delete("user-permissions", permissionId=record_id)
                self.store.delete("role-permissions", permissionId=record_id)
            elif name == "registries":
                self.store.delete("registry-projects", registryId=record_id)
            self.store.delete(name, id=record_id)
        return record

    def drop_client(self, client_id: str) -> None:
        """A robot goes with its node or analysis, and so do its tokens."""
        self.store.execute('DELETE FROM tokens WHERE "subjectId" = ?', (client_id,))
        self.store.delete("clients", id=client_id)

    def credentials(self, client_id: str | None, secret: str | None = None) -> dict[str, Any]:
        """The Hub's ClientCredentials view of a robot (its secret only when just set)."""
        if client_id is None:
            raise ApiError(404, "this record has no client")
        client = self.store.require("clients", client_id, "client")
        return {
            "id": client["id"],
            "secret": secret,
            "name": client["name"],
            "displayName": client["displayName"] or client["name"],
        }

    def set_credentials(self, client_id: str | None, body: Any) -> dict[str, Any]:
        """Rename a robot or give it a new secret (a random one when ``secret`` is null)."""
        if client_id is None:
            raise ApiError(404, "this record has no client")
        fields = validate_body(body, CREDENTIALS)
        self._unique("clients", fields, client_id)
        secret = None
        if "secret" in fields:
            secret = fields.pop("secret") or secrets.token_urlsafe(32)
            fields["secretHash"] = hash_secret(secret)
            self.store.execute('DELETE FROM tokens WHERE "subjectId" = ?', (client_id,))
        if fields:
            self.store.update("clients", client_id, fields)
        return self.credentials(client_id, secret)

    def setup_registry(self, p: Principal, registry_id: str) -> None:
        """The Hub's registry ``setup`` command: its incoming, outgoing and master-image
        projects (the sandbox has no image registry to create them in; only the records)."""
        self.access.require_admin(p, "set up registries")
        registry = self.store.require("registries", registry_id, "registry")
        with self.store.transaction():
            for kind in ("incoming", "outgoing", "masterImages"):
                if self.store.select("registry-projects", registryId=registry["id"], type=kind):
                    continue
                self.store.insert(
                    "registry-projects",
                    {
                        "name": f"{registry['name']}-{kind}",
                        "type": kind,
                        "registryId": registry["id"],
                        "externalName": kind.lower(),
                        "public": kind == "masterImages",
                        "realmId": p.realm_id,
                    },
                )
