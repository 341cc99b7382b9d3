"""Node-to-node messages, encrypted so that the hub relaying them sees only ciphertext.

As FLAME's messenger does: static ECDH between the two nodes' P-256 keys, HKDF-SHA256 with a
fresh 32-byte salt per message, AES-256-GCM. The analysis id, both node ids and the message
id are bound as associated data, so a message cannot be replayed into another analysis,
redirected to another node, or passed off as coming from a third node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flame_lab.errors import EnvelopeError
from flame_lab.security.canonical import canonical_json

VERSION = 1
_INFO = b"flame-lab/node-message/v1"


class MessageRejected(EnvelopeError):
    """A node message failed to decrypt or was not meant for this node."""

    default_hint = "The message was altered, misrouted or replayed; the node ignores it."


@dataclass(frozen=True)
class Route:
    """Who may read a message, and in which analysis; all of it is authenticated."""

    analysis_id: str
    sender_id: str
    recipient_id: str
    message_id: str

    def aad(self) -> bytes:
        return canonical_json(
            {
                "v": VERSION,
                "analysis": self.analysis_id,
                "from": self.sender_id,
                "to": self.recipient_id,
                "id": self.message_id,
            }
        )


def _key(private: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey, salt: bytes):
    shared = private.exchange(ec.ECDH(), peer)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(shared)


def seal_message(
    plaintext: bytes,
    route: Route,
    sender_key: ec.EllipticCurvePrivateKey,
    recipient_key: ec.EllipticCurvePublicKey,
) -> bytes:
    """What the hub relays: version || salt || nonce || ciphertext."""
    salt, nonce = os.urandom(32), os.urandom(12)
    ciphertext = AESGCM(_key(sender_key, recipient_key, salt)).encrypt(
        nonce, plaintext, route.aad()
    )
    return bytes([VERSION]) + salt + nonce + ciphertext


def open_message(
    sealed: bytes,
    route: Route,
    recipient_key: ec.EllipticCurvePrivateKey,
    sender_key: ec.EllipticCurvePublicKey,
) -> bytes:
    """Plaintext of a message for this node from the named sender, or MessageRejected."""
    if len(sealed) < 1 + 32 + 12 + 16 or sealed[0] != VERSION:
        raise MessageRejected("a node message has an unknown format")
    salt, nonce, ciphertext = sealed[1:33], sealed[33:45], sealed[45:]
    try:
        return AESGCM(_key(recipient_key, sender_key, salt)).decrypt(nonce, ciphertext, route.aad())
    except InvalidTag:
        raise MessageRejected(
            f"a message claiming to come from node {route.sender_id} did not authenticate"
        ) from None
