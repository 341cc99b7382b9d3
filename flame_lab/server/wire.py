"""The REST API's JSON shapes: the one place where workflow records become camelCase.

The front end (extension/src/types.ts) is written against these shapes; the federation layer
keeps its own snake_case dataclasses. Nothing here talks to a hub.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flame_lab.federation import AnalysisStatus, LogLine, NodeInfo, NodeState
from flame_lab.records import SubmissionRecord

API_VERSION = 1


# Epoch timestamps as hubs send them (s, ms, µs or ns): the unit follows from the size.
_EPOCH_DIVISORS = ((10**17, 10**9), (10**14, 10**6), (10**11, 10**3), (0, 1))


def timestamp(value: Any) -> str:
    """ISO-8601 (UTC) for a log time given as a datetime or epoch digits; other text unchanged."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    text = str(value).strip()
    if not text.isdigit():
        return text
    number = int(text)
    divisor = next(d for limit, d in _EPOCH_DIVISORS if number >= limit)
    try:
        moment = datetime.fromtimestamp(number / divisor, UTC)
    except (OverflowError, OSError, ValueError):
        return text
    return moment.isoformat(timespec="milliseconds")


def node(info: NodeInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "type": info.type, "online": info.online}


def node_state(state: NodeState) -> dict[str, Any]:
    return {
        "nodeId": state.node_id,
        "nodeName": state.name,
        "type": state.type,
        "approval": state.approval,
        "execution": state.execution,
        "progress": state.progress,
        "comment": state.comment,
    }


def summary(status: AnalysisStatus, record: SubmissionRecord) -> dict[str, Any]:
    """One analysis as a row of the panel's list."""
    return {
        "id": status.analysis_id,
        "name": status.name,
        "createdAt": record.submitted_at,
        "status": status.overall,
        "progress": status.progress,
        "nodes": [node_state(n) for n in status.nodes],
        # what an unfinished analysis waits for, one line per node, each naming its node
        "waiting": list(status.waiting),
    }


def detail(status: AnalysisStatus, record: SubmissionRecord) -> dict[str, Any]:
    """A summary plus the detail view's fields; ``resultAvailable`` is a flag, not the result."""
    failure = (
        {"nodeName": status.failure[0], "reason": status.failure[1]} if status.failure else None
    )
    return {
        **summary(status, record),
        "bundleHash": record.bundle_hash,
        "hubUrl": record.hub_url,
        "failure": failure,
        "resultAvailable": bool(status.result_available),
    }


def log_line(line: LogLine) -> dict[str, Any]:
    return {
        "time": timestamp(line.time),
        "nodeName": line.node_name,
        "level": line.level,
        "message": line.message,
    }


def provenance(record: SubmissionRecord) -> dict[str, Any]:
    """What the front end writes into the notebook's metadata after a submission."""
    return {
        "analysisId": record.analysis_id,
        "hubUrl": record.hub_url,
        "bundleHash": record.bundle_hash,
        "submittedAt": record.submitted_at,
        "nodes": sorted(record.nodes.values()),
        "masterImage": record.master_image,
        "sealedByAnalysis": record.analysis_sealed,
    }


def error_info(exc: BaseException | None) -> dict[str, Any] | None:
    """The ``{message, hint}`` pair that the status answer carries for an unreachable federation."""
    if exc is None:
        return None
    message = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None) or None
    return {"message": message, "hint": hint}


def dataset(d: Any) -> dict[str, Any]:
    """A node's data description (flame_lab.datadict) for the panel's Data section."""
    from flame_lab.datadict import CODE_SYSTEMS, policy_line

    return {
        "node": d.node,
        "records": d.records,
        "tables": [
            {
                "name": t.name,
                "records": t.records,
                "columns": [
                    {
                        "name": c.name,
                        "type": c.type,
                        "unit": c.unit,
                        "description": c.description,
                        "values": c.values_text(),
                        "empty": c.empty,
                    }
                    for c in t.columns
                ],
            }
            for t in d.tables
        ],
        "fhir": [
            {
                "type": r.type,
                "records": r.records,
                "codes": [
                    {
                        "system": CODE_SYSTEMS.get(c.system, c.system),
                        "code": c.code,
                        "display": c.display,
                        "unit": c.unit,
                        "records": c.records,
                    }
                    for c in r.codes
                ],
            }
            for r in d.fhir
        ],
        "codeSystems": list(d.code_systems),
        "policy": policy_line(d.policy),
        "describedAt": d.described_at,
    }
