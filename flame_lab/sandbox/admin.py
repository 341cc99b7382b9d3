"""Acting as a sandbox node's admin: approve or reject an analysis waiting at that node.

A node admin approves only code that verifies, so approval re-checks the signed bundle
against the node's trusted researcher keys before it records anything on the hub.
"""

from __future__ import annotations

from pathlib import Path

from flame_lab.errors import BundleError, NotFound, SandboxError
from flame_lab.hubclient import every
from flame_lab.sandbox import daemon
from flame_lab.sandbox.node.agent import NodeAgent


def decide(
    analysis_id: str,
    node_name: str,
    approve: bool,
    reason: str | None = None,
    home: Path | str | None = None,
) -> str:
    """Record the admin's decision at ``node_name``; returns the comment written on the hub."""
    home = daemon.home_dir(home)
    current = daemon.running(home)
    if current is None:
        raise SandboxError("the sandbox is not running", hint="Start it: `flame-lab sandbox up`.")
    names = [n["name"] for n in daemon.status(home)["nodes"]]
    if node_name not in names:
        raise NotFound(f"no sandbox node {node_name!r}", hint="Nodes: " + ", ".join(names))
    agent = NodeAgent(home, node_name, current.url)
    links = [
        link
        for link in every(agent.core.find_analysis_nodes, filter={"node_id": agent.node_id})
        if str(link.analysis_id) == analysis_id
    ]
    if not links:
        raise NotFound(
            f"analysis {analysis_id} does not involve node {node_name}",
            hint="`flame-lab status` lists your analyses and their nodes.",
        )
    link = links[0]
    if link.approval_status is not None:
        raise SandboxError(
            f"{node_name} already {link.approval_status} analysis {analysis_id}",
            hint="A decision is final; submit the analysis again to ask anew.",
        )
    if approve:
        try:
            manifest = agent.verify(agent.fetch_bundle(analysis_id, None))
        except BundleError as exc:
            comment = f"the code did not verify: {exc.message}"
            agent.decide(link, False, comment)
            return comment
        comment = reason or f"approved by the node admin (signed by {manifest.signer})"
    else:
        comment = reason or "rejected by the node admin"
    agent.decide(link, approve, comment)
    return comment
