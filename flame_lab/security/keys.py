"""Identities: the researcher's (X25519 + Ed25519) and a node's (P-256 ECDH + Ed25519).

This module holds the key types; the key file format is below them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from flame_lab.errors import KeyFileError
from flame_lab.security.keyid import key_id as _key_id

_RAW = {"encoding": serialization.Encoding.Raw, "format": serialization.PublicFormat.Raw}


def b64(data: bytes) -> str:
    """URL-safe base64 without padding, as keys travel in JSON."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"not valid base64: {exc}") from None


def raw_public(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(**_RAW)


@dataclass(frozen=True)
class PublicIdentity:
    """What a researcher shares: nodes trust it, results are sealed to it."""

    encryption_key: X25519PublicKey
    signing_key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return _key_id(raw_public(self.signing_key), raw_public(self.encryption_key))

    def to_dict(self) -> dict[str, str]:
        return {
            "keyId": self.key_id,
            "x25519": b64(raw_public(self.encryption_key)),
            "ed25519": b64(raw_public(self.signing_key)),
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> PublicIdentity:
        """Refuses a dict whose keyId does not match its keys."""
        try:
            ident = cls(
                X25519PublicKey.from_public_bytes(unb64(data["x25519"])),
                Ed25519PublicKey.from_public_bytes(unb64(data["ed25519"])),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise KeyFileError(f"not a flame_lab public identity: {exc}") from None
        if "keyId" in data and data["keyId"] != ident.key_id:
            raise KeyFileError("the public identity's keyId does not match its keys")
        return ident


@dataclass(frozen=True, repr=False)
class Identity:
    """The researcher's private keys; repr and str never show key material."""

    encryption_key: X25519PrivateKey
    signing_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(self.encryption_key.public_key(), self.signing_key.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def __repr__(self) -> str:
        return f"Identity(key_id={self.key_id!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class NodePublicIdentity:
    """What a node publishes: its ECDH key on the hub, its signing key to researchers."""

    ecdh_key: ec.EllipticCurvePublicKey
    signing_key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return _key_id(raw_public(self.signing_key), self.ecdh_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint))

    @property
    def hub_public_key(self) -> str:
        """FLAME's node publicKey field: hex of the PEM text of the P-256 public key."""
        pem = self.ecdh_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.hex()

    @staticmethod
    def ecdh_key_from_hub(hex_pem: str) -> ec.EllipticCurvePublicKey:
        try:
            key = serialization.load_pem_public_key(bytes.fromhex(hex_pem))
        except ValueError as exc:
            raise KeyFileError(f"not a FLAME node public key: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise KeyFileError("a FLAME node public key must be an EC P-256 key")
        return key

    def to_dict(self) -> dict[str, str]:
        return {
            "keyId": self.key_id,
            "publicKey": self.hub_public_key,
            "ed25519": b64(raw_public(self.signing_key)),
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> NodePublicIdentity:
        try:
            ident = cls(
                cls.ecdh_key_from_hub(data["publicKey"]),
                Ed25519PublicKey.from_public_bytes(unb64(data["ed25519"])),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise KeyFileError(f"not a node public identity: {exc}") from None
        if "keyId" in data and data["keyId"] != ident.key_id:
            raise KeyFileError("the node identity's keyId does not match its keys")
        return ident


@dataclass(frozen=True, repr=False)
class NodeIdentity:
    """A node's private keys; repr never shows key material."""

    ecdh_key: ec.EllipticCurvePrivateKey
    signing_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> NodeIdentity:
        return cls(ec.generate_private_key(ec.SECP256R1()), Ed25519PrivateKey.generate())

    @property
    def public(self) -> NodePublicIdentity:
        return NodePublicIdentity(self.ecdh_key.public_key(), self.signing_key.public_key())

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def __repr__(self) -> str:
        return f"NodeIdentity(key_id={self.key_id!r})"

    __str__ = __repr__
