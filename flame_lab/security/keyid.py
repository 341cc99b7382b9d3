"""Key ids: short fingerprints of public keys that people can compare out of band."""

from __future__ import annotations

import hashlib

_DOMAIN = b"flame-lab/key-id/v1\x00"


def key_id(*public_keys: bytes) -> str:
    """32 hex characters (128 bits) over the raw public keys, in the order given."""
    digest = hashlib.sha256(_DOMAIN)
    for raw in public_keys:
        digest.update(len(raw).to_bytes(2, "big"))
        digest.update(raw)
    return digest.hexdigest()[:32]


def display(kid: str) -> str:
    """The key id in groups of four, as printed for a phone or paper check."""
    return " ".join(kid[i : i + 4] for i in range(0, len(kid), 4))
