"""The records a fresh sandbox starts with: a realm, the researcher's user account, one
robot client per node, the nodes, the Python master images of PrivateAIM's public catalog
(``python/base`` is the project's) and an approved project.

Secrets are returned once, to be written to 0600 files by the caller; the store keeps hashes.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field

from flame_lab.sandbox.hub.auth import grant_admin, hash_password, hash_secret
from flame_lab.sandbox.hub.store import Store

PROJECT_NAME = "sandbox"
RESEARCHER = "researcher"
ADMIN = "admin"


@dataclass(frozen=True)
class NodeSeed:
    name: str
    type: str  # "default" | "aggregator"
    public_key: str | None = None


@dataclass(frozen=True, repr=False)
class ProvisionedNode:
    id: str
    name: str
    type: str
    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        return f"ProvisionedNode(name={self.name!r}, id={self.id!r})"


@dataclass(frozen=True, repr=False)
class Provisioned:
    username: str
    password: str
    realm_id: str
    user_id: str
    project_id: str
    master_image_id: str
    nodes: list[ProvisionedNode] = field(default_factory=list)
    admin_username: str = ADMIN
    admin_password: str = ""

    def __repr__(self) -> str:
        return f"Provisioned(username={self.username!r}, project_id={self.project_id!r})"


def is_provisioned(store: Store) -> bool:
    return bool(store.select("realms"))


def provision(store: Store, seeds: list[NodeSeed], username: str = RESEARCHER) -> Provisioned:
    """Create the sandbox's starting records in one transaction: the researcher, an admin
    (who may see and change everything, as a Hub operator), nodes and the project."""
    password = secrets.token_urlsafe(18)
    admin_password = secrets.token_urlsafe(18)
    with store.transaction():
        realm = store.insert(
            "realms",
            {"name": "master", "displayName": "Sandbox", "description": None, "builtIn": True},
        )
        user = store.insert(
            "users",
            {
                "name": username,
                "displayName": "Local researcher",
                "active": True,
                "nameLocked": True,
                "realmId": realm["id"],
                "passwordHash": hash_password(password),
            },
        )
        admin = store.insert(
            "users",
            {
                "name": ADMIN,
                "displayName": "Sandbox admin",
                "active": True,
                "nameLocked": True,
                "realmId": realm["id"],
                "passwordHash": hash_password(admin_password),
            },
        )
        grant_admin(store, admin["id"])
        image = _add_images(store)
        project = store.insert(
            "projects",
            {
                "name": PROJECT_NAME,
                "displayName": "Sandbox federation",
                "description": "Created by `flame-lab sandbox up`",
                "masterImageId": image["id"],
                "analyses": 0,
                "nodes": len(seeds),
                "realmId": realm["id"],
                "userId": user["id"],
            },
        )
        nodes = [_add_node(store, seed, realm["id"], project["id"]) for seed in seeds]
    return Provisioned(
        username,
        password,
        realm["id"],
        user["id"],
        project["id"],
        image["id"],
        nodes,
        ADMIN,
        admin_password,
    )


def sandbox_image_paths() -> list[str]:
    """The master images a sandbox hub offers: the public catalog's Python images."""
    from flame_lab.images.catalog import DEFAULT_IMAGE, shipped

    paths = [p for p in shipped().images if p.startswith("python/")]  # flame-lab's own too
    paths = [p for p in paths if not p.startswith("python/conda/")]
    return sorted(paths, key=lambda p: (p != DEFAULT_IMAGE, p))


def _add_images(store: Store) -> dict:
    """One group per folder and one record per image; returns python/base's record."""
    records = []
    for path in sandbox_image_paths():
        group = path.rsplit("/", 1)[0]
        if not store.select("master-image-groups", virtualPath=group):
            store.insert(
                "master-image-groups",
                {"name": group.rsplit("/", 1)[-1], "path": group, "virtualPath": group},
            )
        records.append(
            store.insert(
                "master-images",
                {
                    "path": path,
                    "virtualPath": path,
                    "groupVirtualPath": group,
                    "buildStatus": "executed",
                    "buildProgress": 100,
                    "name": path.rsplit("/", 1)[-1],
                    "command": sys.executable,
                    "commandArguments": [{"value": "-u", "position": "before"}],
                },
            )
        )
    return records[0]


def _add_node(store: Store, seed: NodeSeed, realm_id: str, project_id: str) -> ProvisionedNode:
    secret = secrets.token_urlsafe(32)
    client = store.insert(
        "clients",
        {
            "name": f"node-{seed.name}",
            "builtIn": False,
            "displayName": f"Robot of {seed.name}",
            "active": True,
            "secretHashed": True,
            "grantTypes": "client_credentials",
            "secretEncrypted": False,
            "authMethod": "secret",
            "tokenBindingMethod": "none",
            "realmId": realm_id,
            "secretHash": hash_secret(secret),
        },
    )
    node = store.insert(
        "nodes",
        {
            "name": seed.name,
            "externalName": seed.name,
            "hidden": False,
            "realmId": realm_id,
            "type": seed.type,
            "publicKey": seed.public_key,
            "online": False,
            "clientId": client["id"],
        },
    )
    store.insert(
        "project-nodes",
        {
            "projectId": project_id,
            "nodeId": node["id"],
            "approvalStatus": "approved",
            "comment": "approved at sandbox up",
            "projectRealmId": realm_id,
            "nodeRealmId": realm_id,
        },
    )
    return ProvisionedNode(node["id"], seed.name, seed.type, client["id"], secret)


def node_names(count: int) -> list[NodeSeed]:
    """``count`` nodes: ``count - 1`` hospital sites and one ``aggregator``."""
    sites = ["uk-aachen", "uk-koeln", "uk-bonn", "uk-essen", "uk-muenster", "uk-duesseldorf"]
    names = [sites[i] if i < len(sites) else f"uk-site-{i + 1}" for i in range(count - 1)]
    return [NodeSeed(n, "default") for n in names] + [NodeSeed("aggregator", "aggregator")]
