"""Acting as a sandbox node's admin: review, then approve or reject an analysis at that node.

The decision goes into the node's own ledger first (that is what the node obeys), then it is
reported to the hub. An approval re-checks the signed bundle against the node's trusted
researcher keys and against the analysis it was distributed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flame_lab.errors import BundleError, NotFound, SandboxError
from flame_lab.hubclient import every, hub_errors
from flame_lab.sandbox import daemon
from flame_lab.sandbox.node.agent import NodeAgent
from flame_lab.sandbox.node.ledger import PENDING
from flame_lab.sandbox.node.review import Review, diff_files, scan


def node_agent(node_name: str, home: Path | str | None = None) -> NodeAgent:
    """The named node of the running sandbox, as its admin acts on it."""
    home = daemon.home_dir(home)
    current = daemon.running(home)
    if current is None:
        raise SandboxError("the sandbox is not running", hint="Start it: `flame-lab sandbox up`.")
    names = [n["name"] for n in daemon.status(home)["nodes"]]
    if node_name not in names:
        raise NotFound(f"no sandbox node {node_name!r}", hint="Nodes: " + ", ".join(names))
    return NodeAgent(home, node_name, current.url, keep_state=False)


def analysis_link(agent: NodeAgent, analysis_id: str) -> Any:
    """This node's part in ``analysis_id``, or NotFound."""
    with hub_errors(f"find analysis {analysis_id} at node {agent.name}"):
        links = every(
            agent.core.find_analysis_nodes,
            filter={"node_id": agent.node_id, "analysis_id": analysis_id},
        )
    if not links:
        raise NotFound(
            f"analysis {analysis_id} does not involve node {agent.name}",
            hint="`flame-lab status` lists your analyses and their nodes.",
        )
    return links[0]


def decide(
    analysis_id: str,
    node_name: str,
    approve: bool,
    reason: str | None = None,
    home: Path | str | None = None,
) -> str:
    """Record the admin's decision at ``node_name``; returns the comment written on the hub."""
    agent = node_agent(node_name, home)
    link = analysis_link(agent, analysis_id)
    with hub_errors(f"read analysis {analysis_id}"):
        analysis = agent.core.get_analysis(analysis_id)
    if analysis is None:
        raise NotFound(f"the hub no longer knows analysis {analysis_id}")
    known = agent.ledger.for_analysis(analysis_id)
    if known is not None and known.state != PENDING:
        raise SandboxError(
            f"{node_name} already {known.state} analysis {analysis_id}",
            hint="A decision is final; submit the analysis again to ask anew.",
        )
    try:
        signed = agent.fetch_bundle(analysis_id, None)
        manifest = agent.check(signed, analysis)
    except BundleError as exc:
        comment = f"the code did not verify: {exc.message}"
        agent.refuse(link, comment)
        if approve:
            return comment
        return reason or comment
    agent.ledger.receive(signed.bundle_hash, analysis_id, str(analysis.name or ""), manifest.signer)
    if approve:
        comment = reason or f"approved by the node admin (signed by {manifest.signer})"
    else:
        comment = reason or "rejected by the node admin"
    decision = agent.ledger.decide(
        signed.bundle_hash, approve, comment, "node admin", signed.files if approve else None
    )
    agent.report(link, decision)
    return comment


def review(analysis_id: str, node_name: str, home: Path | str | None = None) -> Review:
    """What ``node_name``'s admin should read before deciding on ``analysis_id``: the signer,
    every file, the diff against the last version of the same analysis name this signer got
    approved at this node, and the risk scan. Read-only: decides nothing."""
    agent = node_agent(node_name, home)
    analysis_link(agent, analysis_id)
    with hub_errors(f"read analysis {analysis_id}"):
        analysis = agent.core.get_analysis(analysis_id)
    if analysis is None:
        raise NotFound(f"the hub no longer knows analysis {analysis_id}")
    signed = agent.fetch_bundle(analysis_id, None)
    manifest = signed.manifest
    problem = ""
    try:
        agent.check(signed, analysis)
    except BundleError as exc:
        problem = exc.message
    name = str(analysis.name or "")
    previous = agent.ledger.last_approved(name, manifest.signer, other_than=signed.bundle_hash)
    return Review(
        analysis_id=analysis_id,
        node=node_name,
        name=name,
        signer=manifest.signer,
        signer_trusted=manifest.signer in {k.key_id for k in agent.folder.trusted_researchers()},
        bundle_hash=signed.bundle_hash,
        entrypoint=manifest.entrypoint,
        files=tuple((f.path, f.size, f.sha256) for f in manifest.files),
        binding=manifest.binding.to_dict() if manifest.binding else None,
        problem=problem,
        decision=agent.ledger.decision(signed.bundle_hash),
        previous=previous[0] if previous else None,
        changes=tuple(diff_files(previous[1], signed.files)) if previous else (),
        findings=tuple(scan(signed.files)),
    )
