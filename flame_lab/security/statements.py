"""Signed node statements: a node's status reports and log lines carry its own signature.

The hub stores and shows them, but cannot invent or alter one: each ends in a tag
`` [flame-lab-signed v1 SESSION SEQ SIG]`` where SIG is the node's Ed25519 signature over the
analysis, the node, what the line says and (session, seq), which number the node's
statements so that a repeated line is noticed. The researcher's client checks the tag
against the node's pinned identity and shows anything else as unverified.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature

from flame_lab.security.canonical import canonical_json
from flame_lab.security.keys import NodeIdentity, NodePublicIdentity

_DOMAIN = b"flame-lab/node-statement/v1\x00"
_TAG = re.compile(r" \[flame-lab-signed v1 ([0-9a-f]{16}) ([0-9]{1,12}) ([A-Za-z0-9_-]{86})\]\Z")
UNVERIFIED = "(unverified) "


@dataclass(frozen=True)
class Opened:
    """A statement as the researcher may show it: its text, and whether the node said it.
    ``verified`` is None when no key is pinned for the node (nothing to check against)."""

    text: str
    verified: bool | None
    stamp: tuple[str, int] | None = None  # (session, seq) of a verified statement

    def shown(self) -> str:
        return self.text if self.verified is not False else UNVERIFIED + self.text


def _signed_bytes(kind: str, analysis_id: str, node_id: str, said: dict[str, Any]) -> bytes:
    doc = {"v": 1, "kind": kind, "analysis": analysis_id, "node": node_id, **said}
    return _DOMAIN + canonical_json(doc)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Signer:
    """One node process's signing of its statements (a fresh session, numbered lines)."""

    def __init__(self, identity: NodeIdentity, node_id: str) -> None:
        self.identity = identity
        self.node_id = node_id
        self.session = secrets.token_hex(8)
        self._seq = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Signer(node_id={self.node_id!r}, session={self.session!r})"

    def _next(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def _tag(self, kind: str, analysis_id: str, said: dict[str, Any]) -> str:
        seq = self._next()
        said = {**said, "session": self.session, "seq": seq}
        signature = self.identity.signing_key.sign(
            _signed_bytes(kind, analysis_id, self.node_id, said)
        )
        return f" [flame-lab-signed v1 {self.session} {seq} {_b64(signature)}]"

    def log(self, analysis_id: str, level: str, text: str) -> str:
        """The log message to post: ``text`` and the node's signature over it and its level."""
        return text + self._tag("log", analysis_id, {"level": level, "text": text})

    def status(
        self,
        analysis_id: str,
        approval: str | None,
        execution: str | None,
        progress: int,
        text: str,
    ) -> str:
        """The comment to post with a status update: the whole status is signed, not the diff."""
        said = {"approval": approval, "execution": execution, "progress": progress, "text": text}
        return text + self._tag("status", analysis_id, said)


def _open(
    kind: str,
    message: str | None,
    analysis_id: str,
    node_id: str,
    key: NodePublicIdentity | None,
    said: dict[str, Any],
) -> Opened:
    message = message or ""
    found = _TAG.search(message)
    text = message[: found.start()] if found else message
    if key is None:
        return Opened(text, None)
    if found is None:
        return Opened(text, False)
    session, seq, sig = found.group(1), int(found.group(2)), found.group(3)
    full = {**said, "text": text, "session": session, "seq": seq}
    try:
        signature = base64.urlsafe_b64decode(sig + "==")
        key.signing_key.verify(signature, _signed_bytes(kind, analysis_id, node_id, full))
    except (InvalidSignature, ValueError):
        return Opened(text, False)
    return Opened(text, True, (session, seq))


def unsigned_text(text: str) -> str:
    """A comment or log line without its signature tag (for quoting it in another's words)."""
    return _TAG.sub("", text)


def open_log(
    message: str | None,
    *,
    analysis_id: str,
    node_id: str,
    level: str,
    key: NodePublicIdentity | None,
) -> Opened:
    """A node log line: verified only if the pinned node signed this text at this level."""
    return _open("log", message, analysis_id, node_id, key, {"level": level})


def open_status(
    comment: str | None,
    *,
    analysis_id: str,
    node_id: str,
    approval: str | None,
    execution: str | None,
    progress: int,
    key: NodePublicIdentity | None,
) -> Opened:
    """A node's status as the hub shows it: verified only if the node signed all of it."""
    said = {"approval": approval, "execution": execution, "progress": progress}
    return _open("status", comment, analysis_id, node_id, key, said)
