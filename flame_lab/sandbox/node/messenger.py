"""Node-to-node messages over the hub's messenger, encrypted to the receiving node.

The hub relays and stores only ciphertext (security.node_channel); the message id and the
category travel inside it. Each received id is accepted once, so the hub cannot replay (and a
broadcast re-sent after a lost answer is dropped as a repeat). Both directions ride out a hub
that stops answering for up to FLAME_LAB_HUB_OUTAGE; past that, ``outage`` names what happened.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from flame_lab.errors import FlameLabError, HubError
from flame_lab.hubclient import HubClients, HubOutage, Patience, checked, hub_outage, patiently
from flame_lab.security.keys import NodeIdentity
from flame_lab.security.node_channel import Route, open_message, seal_message
from flame_lab.star.runtime import Message

# The longest a single inbox read waits at the hub (its limit is 5 s): long-polling, so a
# message is read as it arrives rather than on the next tick of a timer.
WAIT_SECONDS = 2.0
# Sealed copies of one message go to the hub together, in requests of at most this size.
BATCH_BYTES = 8 * 1024 * 1024
FRAME_VERSION = 1
T = TypeVar("T")


def frame(category: str, body: bytes) -> bytes:
    """A message's plaintext: format byte, category length (2 bytes), category, body as is."""
    name = category.encode("utf-8")
    if len(name) > 0xFFFF:
        raise ValueError("a message category is at most 65535 bytes")
    return bytes([FRAME_VERSION]) + len(name).to_bytes(2, "big") + name + body


def unframe(plaintext: bytes) -> tuple[str, bytes]:
    """(category, body) of a message's plaintext; ValueError for any other shape."""
    if len(plaintext) < 3 or plaintext[0] != FRAME_VERSION:
        raise ValueError("unknown message frame")
    end = 3 + int.from_bytes(plaintext[1:3], "big")
    if end > len(plaintext):
        raise ValueError("truncated message frame")
    return plaintext[3:end].decode("utf-8"), plaintext[end:]


class HubTransport:
    """The agent's Transport for one analysis (see sandbox.node.service.Transport)."""

    def __init__(
        self,
        clients: HubClients,
        analysis_id: str,
        node_id: str,
        identity: NodeIdentity,
        peer_key: Callable[[str], ec.EllipticCurvePublicKey],
        on_rejected: Callable[[str], None] | None = None,
        patience: Patience | None = None,
    ) -> None:
        self.http = clients.core_http
        self.url = clients.endpoints.core_url
        self.timeout = clients.endpoints.timeout
        self.patience = patience or hub_outage()
        self.outage: HubOutage | None = None  # set when a call gave up on the hub
        # the hub's answer that ended a call (an outage, a full disk, a refusal): the run's
        # failure names it rather than the analysis's traceback of it
        self.failure: HubError | None = None
        self.analysis_id = analysis_id
        self.node_id = node_id
        self.identity = identity
        self.peer_key = peer_key
        self.on_rejected = on_rejected
        self._cursor = 0
        self._seen: set[str] = set()
        self._inbox: deque[Message] = deque()

    def send(self, receiver_ids: list[str], category: str, body: bytes) -> list[str]:
        """Seal ``body`` to each receiver; post the sealed copies in as few requests as fit."""
        plaintext = frame(category, body)
        batch: list[tuple[str, dict]] = []
        size, accepted = 0, []
        for receiver_id in receiver_ids:
            message = self._sealed(receiver_id, plaintext)
            if batch and size + len(message["payload"]) > BATCH_BYTES:
                accepted += self._post(batch)
                batch, size = [], 0
            batch.append((receiver_id, message))
            size += len(message["payload"])
        return accepted + (self._post(batch) if batch else [])

    def _sealed(self, receiver_id: str, plaintext: bytes) -> dict[str, str]:
        message_id = uuid.uuid4().hex
        route = Route(self.analysis_id, self.node_id, receiver_id, message_id)
        sealed = seal_message(plaintext, route, self.identity.ecdh_key, self.peer_key(receiver_id))
        return {
            "analysisId": self.analysis_id,
            "fromNodeId": self.node_id,
            "toNodeId": receiver_id,
            # the hub takes base64: the 16-byte message id, then the sealed message
            "payload": base64.b64encode(bytes.fromhex(message_id) + sealed).decode("ascii"),
        }

    def _patiently(self, doing: str, call: Callable[[], T]) -> T:
        try:
            return patiently(doing, call, self.patience, url=self.url)
        except HubError as exc:
            self.failure = exc
            if isinstance(exc, HubOutage):
                self.outage = exc
            raise

    def _post(self, batch: list[tuple[str, dict]]) -> list[str]:
        """One request for the batch: the hub stores all of it or none."""
        doing = "send a message to other nodes"
        response = self._patiently(
            doing,
            lambda: checked(
                self.http.post("analysis-messages", json=[message for _, message in batch]), doing
            ),
        )
        return [receiver for receiver, _ in batch] if response.status_code == 201 else []

    def receive(self, timeout: float | None) -> Message | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._inbox:
            remaining = WAIT_SECONDS if deadline is None else deadline - time.monotonic()
            self._fetch(wait=min(WAIT_SECONDS, max(0.0, remaining)))
            if not self._inbox and deadline is not None and time.monotonic() >= deadline:
                return None
        return self._inbox.popleft()

    def _fetch(self, wait: float) -> None:
        """Read the inbox past the cursor; the hub holds an empty answer up to ``wait`` s."""
        params = {
            "filter[toNodeId]": self.node_id,
            "filter[analysisId]": self.analysis_id,
            "filter[seq]": f">{self._cursor}",
            "sort": "seq",
            "page[limit]": "50",
            "wait": f"{wait:.3f}",
        }
        doing = "receive messages from other nodes"
        response = self._patiently(
            doing,
            lambda: checked(
                self.http.get("analysis-messages", params=params, timeout=self.timeout + wait),
                doing,
            ),
        )
        for item in response.json().get("data", []):
            self._cursor = max(self._cursor, int(item.get("seq", 0)))
            self._accept(item)

    def _accept(self, item: dict) -> None:
        sender = str(item.get("fromNodeId", ""))
        try:
            raw = base64.b64decode(str(item.get("payload", "")), validate=True)
        except ValueError:
            raw = b""
        message_id = raw[:16].hex()
        if len(raw) <= 16 or message_id in self._seen:
            self._reject(f"a message from {sender} was repeated or had no id")
            return
        try:
            route = Route(self.analysis_id, sender, self.node_id, message_id)
            plaintext = open_message(raw[16:], route, self.identity.ecdh_key, self.peer_key(sender))
            category, body = unframe(plaintext)
        except FlameLabError as exc:  # MessageRejected, or no pinned key for the sender
            self._reject(f"a message claiming to come from {sender} was refused: {exc.message}")
            return
        except (ValueError, KeyError, TypeError):
            self._reject(f"a message claiming to come from {sender} did not authenticate")
            return
        self._seen.add(message_id)
        self._inbox.append(Message(sender=sender, category=category, body=body, id=message_id))

    def _reject(self, why: str) -> None:
        if self.on_rejected is not None:
            self.on_rejected(why)
