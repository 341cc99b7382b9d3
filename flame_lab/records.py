"""What the researcher submitted, kept on their own disk.

A submission record is what the kernel compares a sealed result against (analysis id,
bundle hash, run nonce, recipients, the aggregator's key), so it must outlive the kernel:
``fl.attach(id)`` after a restart reads it back from here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import socket
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from flame_lab import config
from flame_lab.errors import NotFound, RecordError

_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
INTENT_PREFIX = ".submitting-"


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
    # True until the code is uploaded and locked; ``writer`` (host:pid) is the submitting
    # process: a pending record whose writer is gone was interrupted, and is resumed
    pending: bool = False
    writer: str = ""
    interrupted: str = ""  # why an interrupted submission was removed at the hub
    # the bound on waiting for silent nodes (flame_lab/deadlines.py): per node id what was last
    # heard of it and since when it is needed; looked_at: the last look (epoch seconds)
    watch: dict[str, dict[str, Any]] = field(default_factory=dict)
    looked_at: float = 0.0
    # the researcher's side gave up (a node silent too long): final here whatever the hub says
    failed_at: str | None = None
    failure: dict[str, str] = field(default_factory=dict)  # nodeId, nodeName, reason
    final_nodes: list[dict[str, Any]] = field(default_factory=list)  # node states at that time
    withdrawn: bool = False  # the hub has deleted it since (so no node starts it later)

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
        """Write the record atomically; a failure (full disk, no permission) leaves no temporary
        file behind and says which folder could not be written."""
        path = self._path(record.analysis_id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(record.to_dict(), indent=2, sort_keys=True))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise RecordError(
                f"cannot write the submission record {path.name} in {self.folder}: "
                f"{exc.strerror or exc}",
                hint="Free disk space or fix the folder's permissions (FLAME_LAB_DATA_DIR moves "
                "it), then try again.",
            ) from None

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
        except (ValueError, TypeError, OSError) as exc:
            raise RecordError(
                f"the submission record {path} is damaged: {_why(exc)}",
                hint="Restore it from a backup, or move it away; `flame-lab status` lists "
                "damaged records.",
            ) from None

    def all(self, hub: str | None = None) -> list[SubmissionRecord]:
        """Newest first; only those of ``hub`` (a Federation.hub_id) when given."""
        if not self.folder.is_dir():
            return []
        records = []
        for path in self._records():
            try:
                record = SubmissionRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError, OSError):
                continue  # listed by damaged()
            if hub is None or record.hub == hub:
                records.append(record)
        return sorted(records, key=lambda r: r.submitted_at, reverse=True)

    # -- submissions in flight ------------------------------------------------------------
    def begin(self, hub: str, name: str) -> str:
        """Note a submission before the hub is asked to create anything (a token the hub's
        analysis carries in its description); fails here, not half-way, on a full disk."""
        token = secrets.token_hex(8)
        self._write(
            self.folder / f"{INTENT_PREFIX}{token}.json",
            {"token": token, "hub": hub, "name": name, "writer": this_writer()},
        )
        return token

    def release(self, token: str) -> None:
        """Give a note up to the next look (no live writer), which removes what it created."""
        path = self.folder / f"{INTENT_PREFIX}{token}.json"
        with contextlib.suppress(OSError, ValueError, RecordError):
            data = json.loads(path.read_text(encoding="utf-8"))
            self._write(path, {**data, "writer": ""})

    def end(self, token: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / f"{INTENT_PREFIX}{token}.json").unlink()

    def intents(self) -> list[dict[str, Any]]:
        """Notes of submissions whose analysis may exist at a hub without a record."""
        found = []
        for path in (
            sorted(self.folder.glob(f"{INTENT_PREFIX}*.json")) if self.folder.is_dir() else []
        ):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, OSError):
                continue
        return found

    def save_bundle(self, analysis_id: str, files: dict[str, bytes]) -> None:
        """The signed bundle of a pending submission, kept until its upload is done."""
        encoded = {p: base64.b64encode(d).decode("ascii") for p, d in files.items()}
        self._write(self._path(analysis_id).with_suffix(".bundle"), encoded)

    def load_bundle(self, analysis_id: str) -> dict[str, bytes] | None:
        try:
            data = json.loads(self._path(analysis_id).with_suffix(".bundle").read_text("utf-8"))
            return {p: base64.b64decode(d, validate=True) for p, d in data.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return None

    def drop_bundle(self, analysis_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(analysis_id).with_suffix(".bundle").unlink()

    def _write(self, path: Path, data: Any) -> None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(data))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise RecordError(
                f"cannot write {path.name} in {self.folder}: {exc.strerror or exc}; "
                "nothing was sent to the hub",
                hint="Free disk space or fix the folder's permissions (FLAME_LAB_DATA_DIR moves "
                "it), then submit again.",
            ) from None

    def _records(self) -> list[Path]:
        return [p for p in self.folder.glob("*.json") if not p.name.startswith(".")]

    def damaged(self) -> list[tuple[Path, str]]:
        """Records that cannot be read, with the reason: shown, never silently left out."""
        found = []
        for path in sorted(self._records()) if self.folder.is_dir() else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                SubmissionRecord.from_dict(data)
            except (ValueError, TypeError, OSError) as exc:
                found.append((path, _why(exc)))
        return found


def this_writer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def writer_alive(writer: str) -> bool:
    """Whether the process that wrote a pending record may still be at work (another host:
    assume so; this host: its pid exists)."""
    host, _, pid = writer.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return host != socket.gethostname() and bool(host)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _why(exc: BaseException) -> str:
    """One line on why a record did not load."""
    if isinstance(exc, UnicodeDecodeError):
        return "it is not text"
    if isinstance(exc, json.JSONDecodeError):
        return f"its JSON breaks at line {exc.lineno}"
    if isinstance(exc, TypeError):
        return "fields are missing or unknown"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
