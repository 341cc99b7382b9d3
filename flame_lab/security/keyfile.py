"""The key file format: a versioned JSON header (bound as AEAD associated data) and private
key material encrypted with AES-256-GCM under a key stretched from a passphrase.

This module knows bytes and dicts, not key types (those are in ``keys.py``). On disk::

    {"header": {"version": 1, "kind": "researcher" | "node",
                "kdf": {"name": "scrypt", "n": ..., "r": ..., "p": ..., "salt": b64}
                     | {"name": "argon2id", "memoryKiB": ..., "iterations": ..., "lanes": ...,
                        "salt": b64},
                "aead": {"name": "AES-256-GCM", "nonce": b64},
                "publicKeys": {... with "keyId"}, "keyId": ..., "created": ISO-8601 UTC},
     "ciphertext": b64}

The associated data is ``canonical_json(header)``: changing any header field breaks decryption.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from flame_lab.errors import (
    FlameLabError,
    InsecurePermissions,
    KeyFileError,
    KeyFileExists,
    KeyFileMissing,
    PassphraseError,
    UnsupportedVersion,
    WeakKdfParameters,
    WrongPassphrase,
)
from flame_lab.security.canonical import canonical_json

VERSION = 1
KINDS = ("researcher", "node")
KDFS = ("scrypt", "argon2id")
AEAD_NAME = "AES-256-GCM"

# Minimums (refused below) and defaults (what we write). scrypt n=2^17, r=8 costs 128 MiB.
SCRYPT_MIN_N, SCRYPT_MIN_R = 2**17, 8
SCRYPT_DEFAULT = {"n": 2**17, "r": 8, "p": 1}
ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_ITERATIONS = 64 * 1024, 2
ARGON2_DEFAULT = {"memoryKiB": 64 * 1024, "iterations": 3, "lanes": 4}  # RFC 9106, option 2
MIN_SALT_BYTES, SALT_BYTES = 16, 16
# Upper bounds: a hostile file must not make us allocate gigabytes or spin for minutes.
SCRYPT_MAX_N, SCRYPT_MAX_R, SCRYPT_MAX_P = 2**20, 32, 16
ARGON2_MAX_MEMORY_KIB, ARGON2_MAX_ITERATIONS, ARGON2_MAX_LANES = 1024 * 1024, 64, 64
MAX_FILE_BYTES = 64 * 1024
_INSECURE_BITS = stat.S_IRWXG | stat.S_IRWXO

_HEADER_FIELDS = {"version", "kind", "kdf", "aead", "publicKeys", "keyId", "created"}
_KDF_FIELDS = {
    "scrypt": {"name", "n", "r", "p", "salt"},
    "argon2id": {"name", "memoryKiB", "iterations", "lanes", "salt"},
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: Any, what: str, path: Path) -> bytes:
    if not isinstance(text, str):
        raise _malformed(path, f"{what} is not a string")
    try:
        return _strict_unb64(text)
    except (ValueError, binascii.Error):
        raise _malformed(path, f"{what} is not valid base64") from None


def _strict_unb64(text: str) -> bytes:
    """URL-safe base64 without padding; any other character is an error, not skipped."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _malformed(path: Path, what: str) -> KeyFileError:
    return KeyFileError(
        f"{path} is not a valid flame_lab key file: {what}",
        hint="Restore the file from a backup, or create a new identity with `flame-lab keys init`.",
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class KeyFileHeader:
    """The parsed, validated header; everything in it is public."""

    version: int
    kind: str
    kdf: dict[str, Any]
    aead: dict[str, Any]
    public_keys: dict[str, str]
    key_id: str
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "kdf": self.kdf,
            "aead": self.aead,
            "publicKeys": self.public_keys,
            "keyId": self.key_id,
            "created": self.created,
        }

    def associated_data(self) -> bytes:
        """The bytes the AEAD authenticates: any header change makes decryption fail."""
        return canonical_json(self.to_dict())


# -- passphrase -> key ---------------------------------------------------------------------
def _passphrase_bytes(passphrase: str) -> bytes:
    if not isinstance(passphrase, str) or not passphrase:
        raise PassphraseError("An empty passphrase cannot protect a key file.")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def new_kdf_params(name: str) -> dict[str, Any]:
    """Fresh parameters (with a random salt) for writing a new key file."""
    salt = _b64(secrets.token_bytes(SALT_BYTES))
    if name == "scrypt":
        return {"name": "scrypt", **SCRYPT_DEFAULT, "salt": salt}
    if name == "argon2id":
        return {"name": "argon2id", **ARGON2_DEFAULT, "salt": salt}
    raise KeyFileError(f"Unknown key derivation {name!r}.", hint="Use 'scrypt' or 'argon2id'.")


def check_kdf_params(kdf: Any, path: Path) -> None:
    """Refuse weak, absurd or malformed parameters before any expensive derivation."""
    if not isinstance(kdf, dict) or kdf.get("name") not in KDFS:
        name = kdf.get("name") if isinstance(kdf, dict) else None
        raise UnsupportedVersion(f"{path} uses an unknown key derivation {name!r}.")
    name = kdf["name"]
    if set(kdf) != _KDF_FIELDS[name]:
        raise _malformed(path, f"{name} parameters must be exactly {sorted(_KDF_FIELDS[name])}")
    numbers = {k: v for k, v in kdf.items() if k not in ("name", "salt")}
    if not all(_is_int(v) and v >= 1 for v in numbers.values()):
        raise _malformed(path, f"{name} parameters must be positive integers")
    salt = _unb64(kdf["salt"], "the salt", path)
    weak: list[str] = []
    if len(salt) < MIN_SALT_BYTES:
        weak.append(f"salt of {len(salt)} bytes < {MIN_SALT_BYTES}")
    if name == "scrypt":
        n, r, p = kdf["n"], kdf["r"], kdf["p"]
        if n & (n - 1):
            raise _malformed(path, "scrypt n must be a power of two")
        if n < SCRYPT_MIN_N:
            weak.append(f"scrypt n={n} < 2^17")
        if r < SCRYPT_MIN_R:
            weak.append(f"scrypt r={r} < {SCRYPT_MIN_R}")
        if n > SCRYPT_MAX_N or r > SCRYPT_MAX_R or p > SCRYPT_MAX_P:
            raise _malformed(path, "scrypt parameters are unreasonably large")
    else:
        memory, iterations = kdf["memoryKiB"], kdf["iterations"]
        if memory < ARGON2_MIN_MEMORY_KIB:
            weak.append(f"argon2id memory {memory} KiB < 64 MiB")
        if iterations < ARGON2_MIN_ITERATIONS:
            weak.append(f"argon2id iterations={iterations} < {ARGON2_MIN_ITERATIONS}")
        if (
            memory > ARGON2_MAX_MEMORY_KIB
            or iterations > ARGON2_MAX_ITERATIONS
            or kdf["lanes"] > ARGON2_MAX_LANES
            or memory < 8 * kdf["lanes"]
        ):
            raise _malformed(path, "argon2id parameters are unreasonable")
    if weak:
        raise WeakKdfParameters(f"{path} uses weak key derivation parameters: " + "; ".join(weak))


def derive_key(kdf: dict[str, Any], passphrase: str) -> bytes:
    """The 32-byte AES key; costs ~0.2-0.4 s and 64-128 MiB by design."""
    secret = _passphrase_bytes(passphrase)
    salt = _strict_unb64(kdf["salt"])
    if kdf["name"] == "scrypt":
        return Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(secret)
    return Argon2id(
        salt=salt,
        length=32,
        iterations=kdf["iterations"],
        lanes=kdf["lanes"],
        memory_cost=kdf["memoryKiB"],
    ).derive(secret)


# -- permissions ---------------------------------------------------------------------------
def _check_private(st: os.stat_result, path: Path, what: str, mode: str) -> None:
    if st.st_mode & _INSECURE_BITS:
        raise InsecurePermissions(
            f"The {what} {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); key files must be private.",
            hint=f"Run `chmod {mode} {path}`.",
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise InsecurePermissions(
            f"The {what} {path} belongs to another user (uid {st.st_uid}).",
            hint="Keep key files in a folder only you own.",
        )


def check_folder(folder: Path) -> None:
    """The folder holding a key file must be a private (0700) directory of ours."""
    try:
        st = folder.stat()
    except OSError as exc:
        raise KeyFileError(f"Cannot read the key folder {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise KeyFileError(f"{folder} is not a folder.", hint="Choose another key file path.")
    _check_private(st, folder, "folder", "700")


def ensure_folder(folder: Path) -> None:
    """Create the key folder at mode 0700 if missing; refuse an existing folder that is not."""
    if not folder.exists():
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise KeyFileError(
                f"Cannot create the key folder {folder}: {exc.strerror}",
                hint="Choose a path in a folder you can write to.",
            ) from None
    check_folder(folder)


# -- reading -------------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    """Read a key file, refusing symlinks, non-files, oversize files and loose permissions."""
    if not os.path.lexists(path.parent):
        raise KeyFileMissing(f"No key file at {path} (its folder does not exist).")
    check_folder(path.parent)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # no links, no FIFOs
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise KeyFileMissing(f"No key file at {path}.") from None
    except OSError as exc:
        raise KeyFileError(f"Cannot open the key file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _malformed(path, "not a regular file")
        _check_private(st, path, "key file", "600")
        if st.st_size > MAX_FILE_BYTES:
            raise _malformed(path, f"larger than {MAX_FILE_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)


def _parse(path: Path, data: bytes) -> tuple[KeyFileHeader, bytes]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _malformed(path, "not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"header", "ciphertext"}:
        raise _malformed(path, "expected exactly 'header' and 'ciphertext'")
    raw = doc["header"]
    if not isinstance(raw, dict):
        raise _malformed(path, "the header is not an object")
    version = raw.get("version")
    if version != VERSION or not _is_int(version):
        raise UnsupportedVersion(f"{path} has key file version {version!r}; we read {VERSION}.")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise UnsupportedVersion(f"{path} holds an unknown kind of identity {kind!r}.")
    if set(raw) != _HEADER_FIELDS:
        raise _malformed(path, f"the header must have exactly {sorted(_HEADER_FIELDS)}")
    aead = raw["aead"]
    if (
        not isinstance(aead, dict)
        or aead.get("name") != AEAD_NAME
        or set(aead)
        != {
            "name",
            "nonce",
        }
    ):
        raise UnsupportedVersion(f"{path} uses an unknown cipher; we read {AEAD_NAME}.")
    if len(_unb64(aead["nonce"], "the nonce", path)) != 12:
        raise _malformed(path, "the AES-GCM nonce must be 12 bytes")
    public = raw["publicKeys"]
    if not isinstance(public, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in public.items()
    ):
        raise _malformed(path, "publicKeys must map names to strings")
    if not isinstance(raw["keyId"], str) or public.get("keyId") != raw["keyId"]:
        raise _malformed(path, "keyId does not match publicKeys")
    if not isinstance(raw["created"], str):
        raise _malformed(path, "created is not a string")
    check_kdf_params(raw["kdf"], path)
    header = KeyFileHeader(version, kind, raw["kdf"], aead, public, raw["keyId"], raw["created"])
    try:
        header.associated_data()
    except FlameLabError:
        raise _malformed(path, "the header is not canonical JSON") from None
    return header, _unb64(doc["ciphertext"], "the ciphertext", path)


def read_header(path: Path) -> KeyFileHeader:
    """The public header of a key file, checked as strictly as for loading; no passphrase."""
    path = Path(path)
    return _parse(path, _read_bytes(path))[0]


def read_keyfile(path: Path, passphrase: str, kind: str) -> tuple[KeyFileHeader, dict[str, str]]:
    """Decrypt a key file of the given kind: (header, the private key dict)."""
    path = Path(path)
    header, ciphertext = _parse(path, _read_bytes(path))
    if header.kind != kind:
        raise KeyFileError(
            f"{path} holds a {header.kind} identity, not a {kind} identity.",
            hint="Load it with the matching function, or pass the right file.",
        )
    key = derive_key(header.kdf, passphrase)
    nonce = _unb64(header.aead["nonce"], "the nonce", path)
    try:
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, header.associated_data())
    except InvalidTag:
        raise WrongPassphrase(
            f"Cannot decrypt {path}: the passphrase is wrong, or the file was modified."
        ) from None
    try:
        secret = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _malformed(path, "the decrypted keys are not JSON") from None
    if not isinstance(secret, dict) or not all(isinstance(v, str) for v in secret.values()):
        raise _malformed(path, "the decrypted keys are not a map of strings")
    return header, secret


# -- writing -------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_keyfile(
    path: Path,
    *,
    kind: str,
    public_keys: dict[str, str],
    secret: dict[str, str],
    passphrase: str,
    kdf: str = "scrypt",
) -> KeyFileHeader:
    """Encrypt ``secret`` under the passphrase and create ``path`` (0600, in a 0700 folder)
    atomically; never replaces an existing file."""
    path = Path(path)
    if kind not in KINDS:
        raise KeyFileError(f"Unknown identity kind {kind!r}.")
    _passphrase_bytes(passphrase)  # refuse an empty passphrase before anything else
    params = new_kdf_params(kdf)
    ensure_folder(path.parent)
    if os.path.lexists(path):
        raise KeyFileExists(f"A key file already exists at {path}; it was left untouched.")
    header = KeyFileHeader(
        version=VERSION,
        kind=kind,
        kdf=params,
        aead={"name": AEAD_NAME, "nonce": _b64(secrets.token_bytes(12))},
        public_keys=dict(public_keys),
        key_id=public_keys["keyId"],
        created=_now(),
    )
    key = derive_key(params, passphrase)
    ciphertext = AESGCM(key).encrypt(
        _unb64(header.aead["nonce"], "the nonce", path),
        canonical_json(secret),
        header.associated_data(),
    )
    body = json.dumps({"header": header.to_dict(), "ciphertext": _b64(ciphertext)}, indent=2)
    _write_new(path, body.encode("utf-8") + b"\n")
    return header


def _write_new(path: Path, data: bytes) -> None:
    """Temp file (O_CREAT|O_EXCL, 0600) in the same folder, fsync, then hard-link into place:
    link(2) fails rather than replace an existing file, and readers never see half a file."""
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise KeyFileError(f"Cannot write in {folder}: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise KeyFileExists(
                f"A key file already exists at {path}; it was left untouched."
            ) from None
        except OSError as exc:
            raise KeyFileError(
                f"Cannot create {path}: {exc.strerror}",
                hint="Choose a path on a local disk (the key file is hard-linked into place).",
            ) from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the file itself is synced
    finally:
        os.close(fd)
