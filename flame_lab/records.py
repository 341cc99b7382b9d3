"""What the researcher submitted, kept on their own disk.

A submission record is what the kernel compares a sealed result against (analysis id,
bundle hash, run nonce, recipients, the aggregator's key), so it must outlive the kernel:
``fl.attach(id)`` after a restart reads it back from here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from flame_lab import config
from flame_lab.errors import NotFound

_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@dataclass
class SubmissionRecord:
    """One submission as the researcher's client saw it; no secrets."""

    analysis_id: str
    name: str
    hub_url: str
    project_id: str
    bundle_hash: str
    run_nonce: str
    signer: str
    recipients: list[str]
    nodes: dict[str, str]  # node id -> node name
    aggregator_id: str
    node_keys: dict[str, dict[str, str]]  # node id -> NodePublicIdentity.to_dict()
    submitted_at: str
    entrypoint: str = ""
    files: list[str] = field(default_factory=list)
    hub: str = ""  # a stable name of the hub (the sandbox's port changes between starts)
    sealed: bool = True  # results are sealed to the researcher (always in the sandbox)
    master_image: str = ""  # the virtual path of the image the nodes run it in
    analysis_sealed: bool = False  # submitted with sealed=True: the analysis seals its result
    cancelled_at: str | None = None
    result_hashes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubmissionRecord:
        known = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known})
        record.hub = record.hub or record.hub_url
        return record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SubmissionStore:
    """One JSON file per analysis in a private folder."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or config.data_dir() / "submissions"

    def _path(self, analysis_id: str) -> Path:
        if not _ID.match(analysis_id):
            raise NotFound(f"{analysis_id!r} is not an analysis id")
        return self.folder / f"{analysis_id}.json"

    def save(self, record: SubmissionRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(record.analysis_id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def load(self, analysis_id: str) -> SubmissionRecord:
        path = self._path(analysis_id)
        try:
            return SubmissionRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise NotFound(
                f"no submission record for analysis {analysis_id} on this machine",
                hint="Only analyses submitted from this account can be attached; "
                "`flame-lab status` lists them.",
            ) from None
        except (ValueError, TypeError) as exc:
            raise NotFound(f"the submission record {path} is damaged: {exc}") from None

    def all(self, hub: str | None = None) -> list[SubmissionRecord]:
        """Newest first; only those of ``hub`` (a Federation.hub_id) when given."""
        if not self.folder.is_dir():
            return []
        records = []
        for path in self.folder.glob("*.json"):
            try:
                record = SubmissionRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError, OSError):
                continue
            if hub is None or record.hub == hub:
                records.append(record)
        return sorted(records, key=lambda r: r.submitted_at, reverse=True)
