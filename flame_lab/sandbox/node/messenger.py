"""Node-to-node messages over the hub's messenger, encrypted to the receiving node.

The hub relays and stores only ciphertext (security.node_channel); the message id and the
category travel inside it. Each received id is accepted once, so the hub cannot replay.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import deque
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec

from flame_lab.errors import HubError
from flame_lab.hubclient import HubClients
from flame_lab.security.keys import NodeIdentity
from flame_lab.security.node_channel import MessageRejected, Route, open_message, seal_message
from flame_lab.star.runtime import Message

POLL_SECONDS = 0.05


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
    ) -> None:
        self.http = clients.core_http
        self.analysis_id = analysis_id
        self.node_id = node_id
        self.identity = identity
        self.peer_key = peer_key
        self.on_rejected = on_rejected
        self._cursor = 0
        self._seen: set[str] = set()
        self._inbox: deque[Message] = deque()

    def send(self, receiver_id: str, category: str, body: bytes) -> bool:
        message_id = uuid.uuid4().hex
        plaintext = json.dumps(
            {"category": category, "body": base64.b64encode(body).decode("ascii")}
        ).encode()
        route = Route(self.analysis_id, self.node_id, receiver_id, message_id)
        sealed = seal_message(plaintext, route, self.identity.ecdh_key, self.peer_key(receiver_id))
        response = self.http.post(
            "analysis-messages",
            json={
                "analysisId": self.analysis_id,
                "fromNodeId": self.node_id,
                "toNodeId": receiver_id,
                # the hub takes base64: the 16-byte message id, then the sealed message
                "payload": base64.b64encode(
                    bytes.fromhex(message_id) + base64.b64decode(sealed)
                ).decode("ascii"),
            },
        )
        return response.status_code == 201

    def receive(self, timeout: float | None) -> Message | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._inbox:
                self._fetch()
            if self._inbox:
                return self._inbox.popleft()
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(POLL_SECONDS)

    def _fetch(self) -> None:
        response = self.http.get(
            "analysis-messages",
            params={
                "filter[toNodeId]": self.node_id,
                "filter[analysisId]": self.analysis_id,
                "filter[seq]": f">{self._cursor}",
                "sort": "seq",
                "page[limit]": "50",
            },
        )
        if response.status_code != 200:
            raise HubError(f"the hub's messenger answered {response.status_code}")
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
        sealed = base64.b64encode(raw[16:]).decode("ascii")
        if len(raw) <= 16 or message_id in self._seen:
            self._reject(f"a message from {sender} was repeated or had no id")
            return
        try:
            route = Route(self.analysis_id, sender, self.node_id, message_id)
            plaintext = open_message(sealed, route, self.identity.ecdh_key, self.peer_key(sender))
            content = json.loads(plaintext)
            body = base64.b64decode(content["body"], validate=True)
            category = str(content["category"])
        except (MessageRejected, ValueError, KeyError, TypeError):
            self._reject(f"a message claiming to come from {sender} did not authenticate")
            return
        self._seen.add(message_id)
        self._inbox.append(Message(sender=sender, category=category, body=body, id=message_id))

    def _reject(self, why: str) -> None:
        if self.on_rejected is not None:
            self.on_rejected(why)
