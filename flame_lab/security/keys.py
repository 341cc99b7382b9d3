"""Identities: the researcher's (X25519 + Ed25519) and a node's (P-256 ECDH + Ed25519).

This module holds the key types, then saving and loading them; the key file format itself
(header, KDF, AES-256-GCM, atomic private writes) lives in ``keyfile.py``.
"""

from __future__ import annotations

import base64
import getpass
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from flame_lab.errors import KeyFileError, PassphraseError
from flame_lab.security import keyfile
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
        return _key_id(
            raw_public(self.signing_key),
            self.ecdh_key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
            ),
        )

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


# -- key files -----------------------------------------------------------------------------
PASSPHRASE_ENV = "FLAME_LAB_PASSPHRASE"  # noqa: S105 (a variable name)
_P256_SCALAR_BYTES = 32


def _raw_private(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def _mismatch(path: Path) -> KeyFileError:
    return KeyFileError(
        f"{path}: the decrypted private keys do not match the public keys in its header.",
        hint="The file is corrupt; restore it from a backup or create a new identity.",
    )


def save_identity(path: Path, identity: Identity, passphrase: str, *, kdf: str = "scrypt") -> None:
    """Write a researcher identity to a new key file (never overwrites; 0600 in a 0700 folder)."""
    keyfile.write_keyfile(
        Path(path),
        kind="researcher",
        public_keys=identity.public.to_dict(),
        secret={
            "x25519": b64(_raw_private(identity.encryption_key)),
            "ed25519": b64(_raw_private(identity.signing_key)),
        },
        passphrase=passphrase,
        kdf=kdf,
    )


def load_identity(path: Path, passphrase: str) -> Identity:
    """Decrypt a researcher key file; refuses loose permissions, weak KDFs, wrong passphrases."""
    path = Path(path)
    header, secret = keyfile.read_keyfile(path, passphrase, "researcher")
    try:
        identity = Identity(
            X25519PrivateKey.from_private_bytes(unb64(secret["x25519"])),
            Ed25519PrivateKey.from_private_bytes(unb64(secret["ed25519"])),
        )
    except (KeyError, ValueError, KeyFileError):
        raise _mismatch(path) from None
    if identity.public.to_dict() != header.public_keys:
        raise _mismatch(path)
    return identity


def save_node_identity(
    path: Path, identity: NodeIdentity, passphrase: str, *, kdf: str = "scrypt"
) -> None:
    """Write a node identity (kind "node") to a new key file, stored like a researcher's."""
    scalar = identity.ecdh_key.private_numbers().private_value
    keyfile.write_keyfile(
        Path(path),
        kind="node",
        public_keys=identity.public.to_dict(),
        secret={
            "p256": b64(scalar.to_bytes(_P256_SCALAR_BYTES, "big")),
            "ed25519": b64(_raw_private(identity.signing_key)),
        },
        passphrase=passphrase,
        kdf=kdf,
    )


def load_node_identity(path: Path, passphrase: str) -> NodeIdentity:
    """Decrypt a node key file, with the same refusals as ``load_identity``."""
    path = Path(path)
    header, secret = keyfile.read_keyfile(path, passphrase, "node")
    try:
        scalar = unb64(secret["p256"])
        if len(scalar) != _P256_SCALAR_BYTES:
            raise ValueError("bad scalar length")
        identity = NodeIdentity(
            ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1()),
            Ed25519PrivateKey.from_private_bytes(unb64(secret["ed25519"])),
        )
    except (KeyError, ValueError, KeyFileError):
        raise _mismatch(path) from None
    if identity.public.to_dict() != header.public_keys:
        raise _mismatch(path)
    return identity


def read_public(path: Path) -> PublicIdentity | NodePublicIdentity:
    """The public half from a key file's header: no passphrase, no key derivation."""
    path = Path(path)
    header = keyfile.read_header(path)
    cls = PublicIdentity if header.kind == "researcher" else NodePublicIdentity
    try:
        return cls.from_dict(header.public_keys)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc.message}", hint=exc.hint) from None


def get_passphrase(
    prompt: str = "Passphrase for your flame_lab identity: ", *, confirm: bool = False
) -> str:
    """FLAME_LAB_PASSPHRASE if set, else ask on the terminal (twice with ``confirm``)."""
    if PASSPHRASE_ENV in os.environ:
        value = os.environ[PASSPHRASE_ENV]
        if not value:
            raise PassphraseError(f"{PASSPHRASE_ENV} is set but empty.")
        return value
    try:
        value = getpass.getpass(prompt)
        if not value:
            raise PassphraseError("The passphrase is empty.")
        if confirm and getpass.getpass("Repeat the passphrase: ") != value:
            raise PassphraseError("The two passphrases differ.", hint="Type the same one twice.")
    except EOFError:
        raise PassphraseError(
            "No passphrase was given (no terminal to ask on).",
            hint=f"Run in a terminal, or set {PASSPHRASE_ENV}.",
        ) from None
    return value


_CHECK_INFO = b"flame-lab/keys-check/v1"


def check_identity(identity: Identity) -> None:
    """Prove a loaded identity works: sign and verify, then an HPKE round trip to its key."""
    message = os.urandom(32)
    public = identity.public
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    try:
        public.signing_key.verify(identity.signing_key.sign(message), message)
        sealed = suite.encrypt(message, public.encryption_key, info=_CHECK_INFO)
        opened = suite.decrypt(sealed, identity.encryption_key, info=_CHECK_INFO)
    except (InvalidSignature, InvalidTag, ValueError):
        opened = None
    if opened != message:
        raise KeyFileError(
            f"Identity {identity.key_id} failed its self-test (sign/verify or HPKE round trip).",
            hint="The key file is damaged; restore it from a backup or create a new identity.",
        )
