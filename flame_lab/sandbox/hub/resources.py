"""What each Hub resource looks like on the wire: its fields, relations and accepted bodies.

One table per resource; SQLite columns carry the camelCase wire names, so a row is a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flame_lab.sandbox.hub.limits import INT64, MAX_LOG_MESSAGE, MAX_NAME, MAX_TEXT

STATUSES = ("starting", "started", "stopping", "stopped", "executing", "executed", "failed")
LOG_LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
BUCKET_TYPES = ("CODE", "RESULT", "TEMP")


@dataclass(frozen=True)
class Resource:
    """A collection the hub serves: columns with their kinds and includable relations."""

    name: str
    table: str
    fields: dict[str, str]
    relations: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def visible(self) -> list[str]:
        return [f for f in self.fields if f not in self.hidden]

    @property
    def queryable(self) -> list[str]:
        """Fields a client may filter and sort by (not JSON blobs, not secrets)."""
        return [f for f in self.visible if self.fields[f] != "json"]


def _fields(spec: str) -> dict[str, str]:
    """'id:uuid name:str ...' -> {'id': 'uuid', 'name': 'str'}; default kind is str."""
    out: dict[str, str] = {}
    for item in spec.split():
        name, _, kind = item.partition(":")
        out[name] = kind or "str"
    return out


_STAMPS = " createdAt:time updatedAt:time"

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in [
        Resource(
            "realms",
            "realms",
            _fields("id:uuid name displayName description builtIn:bool" + _STAMPS),
        ),
        Resource(
            "users",
            "users",
            _fields(
                "id:uuid name displayName email active:bool nameLocked:bool firstName lastName"
                " avatar cover realmId:uuid passwordHash" + _STAMPS
            ),
            relations={"realm": ("realmId", "realms")},
            hidden=frozenset({"passwordHash"}),
            optional=frozenset({"email"}),
        ),
        Resource(
            "clients",
            "clients",
            _fields(
                "id:uuid name builtIn:bool displayName description redirectUri active:bool"
                " secretHashed:bool grantTypes secretEncrypted:bool backchannelLogoutUri"
                " postLogoutRedirectUri baseUrl authMethod tokenBindingMethod realmId:uuid"
                " secretHash" + _STAMPS
            ),
            relations={"realm": ("realmId", "realms")},
            hidden=frozenset({"secretHash"}),
        ),
        Resource(
            "roles",
            "roles",
            _fields("id:uuid name displayName description target realmId:uuid" + _STAMPS),
            relations={"realm": ("realmId", "realms")},
        ),
        Resource(
            "permissions",
            "permissions",
            _fields(
                "id:uuid name displayName description builtIn:bool realmId:uuid policyId:uuid"
                " clientId:uuid" + _STAMPS
            ),
            relations={"realm": ("realmId", "realms")},
        ),
        Resource(
            "role-permissions",
            "role_permissions",
            _fields(
                "id:uuid roleId:uuid permissionId:uuid roleRealmId:uuid permissionRealmId:uuid"
                " policyId:uuid" + _STAMPS
            ),
            relations={
                "role": ("roleId", "roles"),
                "roleRealm": ("roleRealmId", "realms"),
                "permission": ("permissionId", "permissions"),
                "permissionRealm": ("permissionRealmId", "realms"),
            },
        ),
        Resource(
            "user-roles",
            "user_roles",
            _fields("id:uuid userId:uuid roleId:uuid userRealmId:uuid roleRealmId:uuid" + _STAMPS),
            relations={
                "user": ("userId", "users"),
                "role": ("roleId", "roles"),
                "userRealm": ("userRealmId", "realms"),
                "roleRealm": ("roleRealmId", "realms"),
            },
        ),
        Resource(
            "user-permissions",
            "user_permissions",
            _fields(
                "id:uuid userId:uuid permissionId:uuid userRealmId:uuid permissionRealmId:uuid"
                " policyId:uuid" + _STAMPS
            ),
            relations={
                "user": ("userId", "users"),
                "permission": ("permissionId", "permissions"),
                "userRealm": ("userRealmId", "realms"),
                "permissionRealm": ("permissionRealmId", "realms"),
            },
        ),
        Resource(
            "registries",
            "registries",
            _fields("id:uuid name host accountName accountSecret" + _STAMPS),
            optional=frozenset({"accountSecret"}),
        ),
        Resource(
            "registry-projects",
            "registry_projects",
            _fields(
                "id:uuid name type registryId:uuid externalName accountName accountSecret"
                " public:bool externalId accountId webhookName webhookExists:bool realmId:uuid"
                + _STAMPS
            ),
            relations={"registry": ("registryId", "registries")},
            optional=frozenset({"accountSecret"}),
        ),
        Resource(
            "master-image-groups",
            "master_image_groups",
            _fields("id:uuid name path virtualPath" + _STAMPS),
        ),
        Resource(
            "master-images",
            "master_images",
            _fields(
                "id:uuid path virtualPath groupVirtualPath buildStatus buildProgress:int name"
                " command commandArguments:json" + _STAMPS
            ),
        ),
        Resource(
            "nodes",
            "nodes",
            _fields(
                "id:uuid name externalName hidden:bool realmId:uuid registryId:uuid type"
                " publicKey online:bool registryProjectId:uuid clientId:uuid" + _STAMPS
            ),
            relations={
                "registry": ("registryId", "registries"),
                "registryProject": ("registryProjectId", "registry-projects"),
            },
        ),
        Resource(
            "projects",
            "projects",
            _fields(
                "id:uuid name displayName description masterImageId:uuid analyses:int nodes:int"
                " realmId:uuid userId:uuid" + _STAMPS
            ),
            relations={"masterImage": ("masterImageId", "master-images")},
        ),
        Resource(
            "project-nodes",
            "project_nodes",
            _fields(
                "id:uuid projectId:uuid nodeId:uuid approvalStatus comment projectRealmId:uuid"
                " nodeRealmId:uuid" + _STAMPS
            ),
            relations={"node": ("nodeId", "nodes"), "project": ("projectId", "projects")},
        ),
        Resource(
            "analyses",
            "analyses",
            _fields(
                "id:uuid name displayName description projectId:uuid masterImageId:uuid"
                " registryId:uuid imageCommandArguments:json nodes:int nodesApproved:int"
                " configurationLocked:bool configurationEntrypointValid:bool"
                " configurationImageValid:bool configurationNodeAggregatorValid:bool"
                " configurationNodeDefaultValid:bool configurationNodesValid:bool"
                " distributionNodesValid:bool buildStatus buildProgress:int buildHash buildOs"
                " buildSize:int distributionStatus distributionProgress:int executionStatus"
                " executionProgress:int realmId:uuid userId:uuid clientId:uuid" + _STAMPS
            ),
            relations={
                "registry": ("registryId", "registries"),
                "project": ("projectId", "projects"),
                "masterImage": ("masterImageId", "master-images"),
            },
            aliases={"buildNodesValid": "distributionNodesValid"},
        ),
        Resource(
            "analysis-nodes",
            "analysis_nodes",
            _fields(
                "id:uuid analysisId:uuid nodeId:uuid approvalStatus executionStatus"
                " executionProgress:int comment artifactTag artifactDigest analysisRealmId:uuid"
                " nodeRealmId:uuid" + _STAMPS
            ),
            relations={"analysis": ("analysisId", "analyses"), "node": ("nodeId", "nodes")},
        ),
        Resource(
            "analysis-logs",
            "analysis_logs",
            _fields(
                "id:uuid analysisId:uuid time message service channel level labels:json" + _STAMPS
            ),
        ),
        Resource(
            "analysis-node-logs",
            "analysis_node_logs",
            _fields(
                "id:uuid analysisId:uuid nodeId:uuid time message service channel level"
                " labels:json code status" + _STAMPS
            ),
        ),
        Resource(
            "analysis-buckets",
            "analysis_buckets",
            _fields("id:uuid type bucketId:uuid analysisId:uuid realmId:uuid" + _STAMPS),
            relations={"analysis": ("analysisId", "analyses")},
        ),
        Resource(
            "analysis-bucket-files",
            "analysis_bucket_files",
            _fields(
                "id:uuid path bucketFileId:uuid bucketId:uuid analysisBucketId:uuid root:bool"
                " realmId:uuid userId:uuid clientId:uuid analysisId:uuid" + _STAMPS
            ),
            relations={
                "analysisBucket": ("analysisBucketId", "analysis-buckets"),
                "analysis": ("analysisId", "analyses"),
            },
        ),
        Resource(
            "analysis-messages",
            "analysis_messages",
            _fields(
                "id:uuid seq:int analysisId:uuid fromNodeId:uuid toNodeId:uuid payload" + _STAMPS
            ),
        ),
        Resource(
            "buckets",
            "buckets",
            _fields("id:uuid name region actorId:uuid actorType realmId:uuid" + _STAMPS),
        ),
        Resource(
            "bucket-files",
            "bucket_files",
            _fields(
                "id:uuid name path hash directory size:int actorType actorId:uuid realmId:uuid"
                " bucketId:uuid" + _STAMPS
            ),
            relations={"bucket": ("bucketId", "buckets")},
        ),
    ]
}


@dataclass(frozen=True)
class Spec:
    """One accepted body field: its kind, whether it must be present, may be null, or choices;
    for text its longest length and whether it is a name (no control or bidi characters at
    all) or free text (tab and line breaks allowed); for integers their range."""

    kind: str = "str"
    required: bool = False
    nullable: bool = True
    choices: tuple[str, ...] = ()
    max_len: int = MAX_NAME
    is_name: bool = True
    low: int = INT64[0]
    high: int = INT64[1]


_UUID = Spec("uuid")
_REQ_UUID = Spec("uuid", required=True, nullable=False)
_TEXT = Spec("str", max_len=MAX_TEXT, is_name=False)  # descriptions, comments, keys
_LABEL = Spec("str")  # display names, external names
_NAME = Spec("str", required=True, nullable=False)
# a sealed node message in base64 (its decoded size is checked against its own limit)
MAX_PAYLOAD = 24 * 1024 * 1024
_ARGS = Spec("args")
_APPROVAL = Spec("str", choices=("approved", "rejected"))

# (resource, action) -> accepted body fields; anything else in a body is a 400.
BODIES: dict[tuple[str, str], dict[str, Spec]] = {
    ("nodes", "create"): {
        "name": _NAME,
        "externalName": _LABEL,
        "hidden": Spec("bool"),
        "realmId": _UUID,
        "registryId": _UUID,
        "type": Spec("str", choices=("default", "aggregator")),
    },
    ("nodes", "update"): {
        "hidden": Spec("bool", nullable=False),
        "externalName": _LABEL,
        "type": Spec("str", nullable=False, choices=("default", "aggregator")),
        "publicKey": _TEXT,
        "realmId": _UUID,
        "registryId": _UUID,
    },
    ("projects", "create"): {
        "name": _NAME,
        "displayName": _LABEL,
        "description": _TEXT,
        "masterImageId": _UUID,
    },
    ("projects", "update"): {
        "name": Spec("str", nullable=False),
        "displayName": _LABEL,
        "description": _TEXT,
        "masterImageId": _UUID,
    },
    ("project-nodes", "create"): {"projectId": _REQ_UUID, "nodeId": _REQ_UUID},
    ("project-nodes", "update"): {"comment": _TEXT, "approvalStatus": _APPROVAL},
    ("analyses", "create"): {
        "projectId": _REQ_UUID,
        "name": _LABEL,
        "displayName": _LABEL,
        "description": _TEXT,
        "masterImageId": _UUID,
        "registryId": _UUID,
        "imageCommandArguments": _ARGS,
    },
    ("analyses", "update"): {
        "name": Spec("str", nullable=False),
        "displayName": _LABEL,
        "description": _TEXT,
        "masterImageId": _UUID,
        "imageCommandArguments": Spec("args", nullable=False),
    },
    ("analyses", "command"): {
        "command": Spec(
            "str",
            required=True,
            nullable=False,
            choices=(
                "configurationLock",
                "configurationUnlock",
                "buildStart",
                "buildCheck",
                "distributionStart",
                "distributionCheck",
                "storageCheck",
            ),
        )
    },
    ("analysis-nodes", "create"): {"analysisId": _REQ_UUID, "nodeId": _REQ_UUID},
    ("analysis-nodes", "update"): {
        "comment": _TEXT,
        "approvalStatus": _APPROVAL,
        "executionStatus": Spec("str", choices=STATUSES),
        "executionProgress": Spec("int", low=0, high=100),
    },
    ("analysis-node-logs", "create"): {
        "analysisId": _REQ_UUID,
        "nodeId": _REQ_UUID,
        "code": _LABEL,
        "status": _LABEL,
        "message": Spec(
            "str", required=True, nullable=False, max_len=MAX_LOG_MESSAGE, is_name=False
        ),
        "level": Spec("str", required=True, nullable=False, choices=LOG_LEVELS),
    },
    ("analysis-bucket-files", "create"): {
        "path": _NAME,
        "bucketFileId": _REQ_UUID,
        "bucketId": _REQ_UUID,
        "analysisBucketId": _REQ_UUID,
        "root": Spec("bool", required=True, nullable=False),
    },
    ("analysis-bucket-files", "update"): {"root": Spec("bool", nullable=False)},
    ("analysis-messages", "create"): {
        "analysisId": _REQ_UUID,
        "fromNodeId": _REQ_UUID,
        "toNodeId": _REQ_UUID,
        "payload": Spec("str", required=True, nullable=False, max_len=MAX_PAYLOAD, is_name=False),
    },
    ("buckets", "create"): {"name": _NAME, "region": _LABEL},
}
