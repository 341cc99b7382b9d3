"""The sandbox database's schema, as forward migrations: never edit one, append the next.

``schema_version`` records how far a database has come, so a newer flame_lab opens an older
sandbox by running only the steps it lacks. Columns carry the Hub's camelCase wire names.
"""

from __future__ import annotations

# Version 1: the Hub's core, storage and auth records, and bearer tokens (stored hashed).
V1 = """
CREATE TABLE realms (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "displayName" TEXT,
    "description" TEXT,
    "builtIn" INTEGER,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE users (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "displayName" TEXT,
    "email" TEXT,
    "active" INTEGER,
    "nameLocked" INTEGER,
    "firstName" TEXT,
    "lastName" TEXT,
    "avatar" TEXT,
    "cover" TEXT,
    "realmId" TEXT,
    "passwordHash" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE clients (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "builtIn" INTEGER,
    "displayName" TEXT,
    "description" TEXT,
    "redirectUri" TEXT,
    "active" INTEGER,
    "secretHashed" INTEGER,
    "grantTypes" TEXT,
    "secretEncrypted" INTEGER,
    "backchannelLogoutUri" TEXT,
    "postLogoutRedirectUri" TEXT,
    "baseUrl" TEXT,
    "authMethod" TEXT,
    "tokenBindingMethod" TEXT,
    "realmId" TEXT,
    "secretHash" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE master_image_groups (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "path" TEXT,
    "virtualPath" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE master_images (
    "id" TEXT PRIMARY KEY,
    "path" TEXT,
    "virtualPath" TEXT,
    "groupVirtualPath" TEXT,
    "buildStatus" TEXT,
    "buildProgress" INTEGER,
    "name" TEXT,
    "command" TEXT,
    "commandArguments" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE nodes (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "externalName" TEXT,
    "hidden" INTEGER,
    "realmId" TEXT,
    "registryId" TEXT,
    "type" TEXT,
    "publicKey" TEXT,
    "online" INTEGER,
    "registryProjectId" TEXT,
    "clientId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE projects (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "displayName" TEXT,
    "description" TEXT,
    "masterImageId" TEXT,
    "analyses" INTEGER,
    "nodes" INTEGER,
    "realmId" TEXT,
    "userId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE project_nodes (
    "id" TEXT PRIMARY KEY,
    "projectId" TEXT,
    "nodeId" TEXT,
    "approvalStatus" TEXT,
    "comment" TEXT,
    "projectRealmId" TEXT,
    "nodeRealmId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE analyses (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "displayName" TEXT,
    "description" TEXT,
    "projectId" TEXT,
    "masterImageId" TEXT,
    "registryId" TEXT,
    "imageCommandArguments" TEXT,
    "nodes" INTEGER,
    "nodesApproved" INTEGER,
    "configurationLocked" INTEGER,
    "configurationEntrypointValid" INTEGER,
    "configurationImageValid" INTEGER,
    "configurationNodeAggregatorValid" INTEGER,
    "configurationNodeDefaultValid" INTEGER,
    "configurationNodesValid" INTEGER,
    "distributionNodesValid" INTEGER,
    "buildStatus" TEXT,
    "buildProgress" INTEGER,
    "buildHash" TEXT,
    "buildOs" TEXT,
    "buildSize" INTEGER,
    "distributionStatus" TEXT,
    "distributionProgress" INTEGER,
    "executionStatus" TEXT,
    "executionProgress" INTEGER,
    "realmId" TEXT,
    "userId" TEXT,
    "clientId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE analysis_nodes (
    "id" TEXT PRIMARY KEY,
    "analysisId" TEXT,
    "nodeId" TEXT,
    "approvalStatus" TEXT,
    "executionStatus" TEXT,
    "executionProgress" INTEGER,
    "comment" TEXT,
    "artifactTag" TEXT,
    "artifactDigest" TEXT,
    "analysisRealmId" TEXT,
    "nodeRealmId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE analysis_logs (
    "id" TEXT PRIMARY KEY,
    "analysisId" TEXT,
    "time" TEXT,
    "message" TEXT,
    "service" TEXT,
    "channel" TEXT,
    "level" TEXT,
    "labels" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE analysis_node_logs (
    "id" TEXT PRIMARY KEY,
    "analysisId" TEXT,
    "nodeId" TEXT,
    "time" TEXT,
    "message" TEXT,
    "service" TEXT,
    "channel" TEXT,
    "level" TEXT,
    "labels" TEXT,
    "code" TEXT,
    "status" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE analysis_buckets (
    "id" TEXT PRIMARY KEY,
    "type" TEXT,
    "bucketId" TEXT,
    "analysisId" TEXT,
    "realmId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE analysis_bucket_files (
    "id" TEXT PRIMARY KEY,
    "path" TEXT,
    "bucketFileId" TEXT,
    "bucketId" TEXT,
    "analysisBucketId" TEXT,
    "root" INTEGER,
    "realmId" TEXT,
    "userId" TEXT,
    "clientId" TEXT,
    "analysisId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE buckets (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "region" TEXT,
    "actorId" TEXT,
    "actorType" TEXT,
    "realmId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE bucket_files (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "path" TEXT,
    "hash" TEXT,
    "directory" TEXT,
    "size" INTEGER,
    "actorType" TEXT,
    "actorId" TEXT,
    "realmId" TEXT,
    "bucketId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE tokens (
    "hash" TEXT PRIMARY KEY,
    "kind" TEXT NOT NULL,
    "subjectType" TEXT NOT NULL,
    "subjectId" TEXT NOT NULL,
    "expiresAt" REAL NOT NULL,
    "createdAt" TEXT
);
CREATE INDEX analysis_nodes_analysis ON analysis_nodes ("analysisId");
CREATE INDEX analysis_buckets_analysis ON analysis_buckets ("analysisId");
CREATE INDEX analysis_bucket_files_analysis ON analysis_bucket_files ("analysisId");
CREATE INDEX analysis_node_logs_analysis ON analysis_node_logs ("analysisId", "nodeId");
CREATE INDEX analysis_logs_analysis ON analysis_logs ("analysisId");
CREATE INDEX bucket_files_bucket ON bucket_files ("bucketId", "path");
CREATE INDEX project_nodes_project ON project_nodes ("projectId");
"""

# Version 2: the sandbox's messenger extension and immutable build snapshots.
V2 = """
CREATE TABLE analysis_messages (
    "id" TEXT PRIMARY KEY,
    "seq" INTEGER,
    "analysisId" TEXT,
    "fromNodeId" TEXT,
    "toNodeId" TEXT,
    "payload" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE UNIQUE INDEX analysis_messages_seq ON analysis_messages ("seq");
CREATE INDEX analysis_messages_inbox ON analysis_messages ("toNodeId", "seq");
CREATE TABLE builds (
    "hash" TEXT PRIMARY KEY,
    "analysisId" TEXT NOT NULL,
    "manifest" TEXT NOT NULL,
    "size" INTEGER NOT NULL,
    "createdAt" TEXT
);
"""

# Version 3: Authup's roles and permissions (an admin is a user holding the "admin" role), and
# the Hub's container registries with their projects.
V3 = """
CREATE TABLE roles (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "displayName" TEXT,
    "description" TEXT,
    "target" TEXT,
    "realmId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE permissions (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "displayName" TEXT,
    "description" TEXT,
    "builtIn" INTEGER,
    "realmId" TEXT,
    "policyId" TEXT,
    "clientId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE role_permissions (
    "id" TEXT PRIMARY KEY,
    "roleId" TEXT,
    "permissionId" TEXT,
    "roleRealmId" TEXT,
    "permissionRealmId" TEXT,
    "policyId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE user_roles (
    "id" TEXT PRIMARY KEY,
    "userId" TEXT,
    "roleId" TEXT,
    "userRealmId" TEXT,
    "roleRealmId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE user_permissions (
    "id" TEXT PRIMARY KEY,
    "userId" TEXT,
    "permissionId" TEXT,
    "userRealmId" TEXT,
    "permissionRealmId" TEXT,
    "policyId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE registries (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "host" TEXT,
    "accountName" TEXT,
    "accountSecret" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE TABLE registry_projects (
    "id" TEXT PRIMARY KEY,
    "name" TEXT,
    "type" TEXT,
    "registryId" TEXT,
    "externalName" TEXT,
    "accountName" TEXT,
    "accountSecret" TEXT,
    "public" INTEGER,
    "externalId" TEXT,
    "accountId" TEXT,
    "webhookName" TEXT,
    "webhookExists" INTEGER,
    "realmId" TEXT,
    "createdAt" TEXT,
    "updatedAt" TEXT
);
CREATE INDEX user_roles_user ON user_roles ("userId");
CREATE INDEX analyses_user ON analyses ("userId");
CREATE INDEX analysis_nodes_node ON analysis_nodes ("nodeId")
"""

MIGRATIONS: tuple[str, ...] = (V1, V2, V3)
