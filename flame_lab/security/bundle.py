"""Signed analysis bundles: the researcher signs exactly which code a node may run.

A bundle is a set of code files plus a canonical JSON manifest (paths, sizes, SHA-256s,
entrypoint, recipients, run nonce, validity window, signer id, and the binding: analysis id,
project id, node ids and hub it was signed for) and an Ed25519 signature over a
domain-separated prefix and the manifest bytes. Nodes `verify` it against keys *they* trust
and `check_binding` it against the analysis it reached them in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature

from flame_lab.errors import (
    BadBundleSignature,
    BadEntrypoint,
    BundleError,
    BundleExpired,
    BundleNotYetValid,
    BundleTooLarge,
    DuplicatePath,
    FlameLabError,
    MalformedManifest,
    TamperedBundle,
    UnsafePath,
    UnsupportedBundleVersion,
    UntrustedSigner,
)
from flame_lab.security.canonical import canonical_json
from flame_lab.security.keys import Identity, PublicIdentity, b64, unb64

FORMAT_VERSION = 1
SIGNATURE_DOMAIN = b"flame-lab/bundle/v1\x00"
RESERVED_FOLDER = ".flame-lab"
MANIFEST_NAME = f"{RESERVED_FOLDER}/manifest.json"
SIGNATURE_NAME = f"{RESERVED_FOLDER}/signature"
DEFAULT_TTL_SECONDS = 7 * 24 * 3600
CLOCK_SKEW_SECONDS = 300
NONCE_BYTES = 32
SIGNATURE_BYTES = 64
MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255

_MANIFEST_FIELDS = frozenset(
    {"version", "files", "entrypoint", "recipients", "runNonce", "createdAt", "expiresAt", "signer"}
)
_OPTIONAL_FIELDS = frozenset({"binding"})
_BINDING_FIELDS = frozenset({"analysisId", "projectId", "nodeIds", "hub"})
_FILE_FIELDS = frozenset({"path", "size", "sha256"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{32}")
# Unicode categories refused in paths: controls, format (bidi overrides), surrogates,
# private use, line and paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


@dataclass(frozen=True)
class Limits:
    """Size limits a builder and a node apply; analysis code is small, data stays at nodes."""

    max_total_bytes: int = 50 * 1024 * 1024
    max_files: int = 1000
    max_manifest_bytes: int = 4 * 1024 * 1024


class BindingMismatch(BundleError):
    """The bundle was signed for another analysis, project, node set or hub."""

    default_hint = (
        "Do not run it: the hub distributed a bundle signed for another run. The researcher "
        "must submit the analysis again (flame_lab signs each submission for its analysis)."
    )


@dataclass(frozen=True)
class Binding:
    """What a run is for, in the signer's words: this analysis, project, node set and hub."""

    analysis_id: str
    project_id: str
    node_ids: tuple[str, ...]
    hub: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_ids", tuple(sorted(set(self.node_ids))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysisId": self.analysis_id,
            "projectId": self.project_id,
            "nodeIds": list(self.node_ids),
            "hub": self.hub,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Binding:
        if not isinstance(raw, dict) or raw.keys() != _BINDING_FIELDS:
            raise MalformedManifest(
                "the manifest's binding must hold exactly analysisId, projectId, nodeIds, hub"
            )
        texts = [raw["analysisId"], raw["projectId"], raw["hub"]]
        nodes = raw["nodeIds"]
        if not all(isinstance(t, str) and 0 < len(t) <= 1024 for t in texts):
            raise MalformedManifest("the binding's analysisId, projectId and hub must be text")
        if (
            not isinstance(nodes, list)
            or not nodes
            or not all(isinstance(n, str) and 0 < len(n) <= 1024 for n in nodes)
            or nodes != sorted(set(nodes))
        ):
            raise MalformedManifest("the binding's nodeIds must be a sorted list of node ids")
        return cls(raw["analysisId"], raw["projectId"], tuple(nodes), raw["hub"])


def check_binding(
    manifest: Manifest, expected: Binding, *, hub_aliases: Sequence[str] = ()
) -> None:
    """Refuse a manifest signed for another run than the one the node was asked to do.

    ``hub_aliases`` are other names the node's admin knows its hub by (its configured core URL),
    so a researcher who names the hub by that URL is accepted as well as by its registered id.
    """
    bound = manifest.binding
    if bound is None:
        raise BindingMismatch(
            "the bundle is not bound to an analysis (no binding in the signed manifest)"
        )
    hubs = {expected.hub, *(_hub_name(a) for a in hub_aliases)}
    for label, got, want in (
        ("analysis", bound.analysis_id, expected.analysis_id),
        ("project", bound.project_id, expected.project_id),
        ("hub", _hub_name(bound.hub), expected.hub),
    ):
        if got != want and not (label == "hub" and got in hubs):
            raise BindingMismatch(
                f"the bundle was signed for {label} {got[:80]!r}, but it was distributed in "
                f"{label} {want[:80]!r}"
            )
    if bound.node_ids != expected.node_ids:
        extra = sorted(set(expected.node_ids) - set(bound.node_ids))
        missing = sorted(set(bound.node_ids) - set(expected.node_ids))
        raise BindingMismatch(
            "the bundle was signed for another set of nodes than the analysis has"
            f" (not signed for: {', '.join(extra) or 'none'};"
            f" signed for but absent: {', '.join(missing) or 'none'})"
        )


def _hub_name(name: str) -> str:
    """A hub URL compared without a trailing slash; an opaque hub id as it is."""
    return name.rstrip("/")


@dataclass(frozen=True)
class FileEntry:
    """One file as the manifest pins it."""

    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """The signed statement: these files, this entrypoint, results to these recipients."""

    version: int
    files: tuple[FileEntry, ...]
    entrypoint: str
    recipients: tuple[PublicIdentity, ...]
    run_nonce: str
    created_at: int
    expires_at: int
    signer: str
    binding: Binding | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "files": [entry.to_dict() for entry in self.files],
            "entrypoint": self.entrypoint,
            "recipients": [ident.to_dict() for ident in self.recipients],
            "runNonce": self.run_nonce,
            "createdAt": self.created_at,
            "expiresAt": self.expires_at,
            "signer": self.signer,
        }
        if self.binding is not None:
            out["binding"] = self.binding.to_dict()
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())


@dataclass(frozen=True, repr=False)
class SignedBundle:
    """Manifest bytes, signature and the code files, as they travel through the hub."""

    manifest_bytes: bytes
    signature: bytes
    files: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        frozen = MappingProxyType({path: bytes(data) for path, data in self.files.items()})
        object.__setattr__(self, "files", frozen)
        object.__setattr__(self, "manifest_bytes", bytes(self.manifest_bytes))
        object.__setattr__(self, "signature", bytes(self.signature))

    @cached_property
    def manifest(self) -> Manifest:
        """The parsed manifest (structure only; `verify` decides whether to believe it)."""
        return parse_manifest(self.manifest_bytes)

    @property
    def bundle_hash(self) -> str:
        """SHA-256 hex of the manifest bytes: the id that nodes and sealed results bind to."""
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    def to_bucket_files(self) -> dict[str, bytes]:
        """The files to upload into the analysis CODE bucket."""
        out = dict(self.files)
        out[MANIFEST_NAME] = self.manifest_bytes
        out[SIGNATURE_NAME] = self.signature
        return out

    @classmethod
    def from_bucket_files(cls, files: Mapping[str, bytes]) -> SignedBundle:
        """Split the reserved manifest and signature back out of a CODE bucket's files."""
        missing = [name for name in (MANIFEST_NAME, SIGNATURE_NAME) if name not in files]
        if missing:
            raise MalformedManifest(f"the bundle has no {' or '.join(missing)}")
        code = {p: d for p, d in files.items() if p not in (MANIFEST_NAME, SIGNATURE_NAME)}
        return cls(files[MANIFEST_NAME], files[SIGNATURE_NAME], code)

    def __repr__(self) -> str:
        return f"SignedBundle(bundle_hash={self.bundle_hash!r}, files={len(self.files)})"


# -- paths ---------------------------------------------------------------------------------
def _show(path: str) -> str:
    """A path for an error message: escaped, never more than ~120 characters."""
    return repr(path if len(path) <= 120 else path[:120] + "...")


def _path_problem(path: str) -> str | None:
    """Why a path is unsafe to write below a node's code folder, or None if it is safe."""
    if not isinstance(path, str):
        return f"a path must be text, not {type(path).__name__}"
    if not path:
        return "the path is empty"
    for char in path:
        if unicodedata.category(char) in _BAD_CATEGORIES:
            return f"it contains the control or invisible character U+{ord(char):04X}"
    if "\\" in path:
        return "it contains a backslash (use '/' between folders)"
    if ":" in path:
        return "it contains ':' (drive letters and alternate streams are refused)"
    if path.startswith("/"):
        return "it is absolute (paths are relative to the bundle)"
    if len(path.encode()) > MAX_PATH_BYTES:
        return f"it is longer than {MAX_PATH_BYTES} bytes"
    segments = path.split("/")
    for segment in segments:
        if segment == "":
            return "it has an empty segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"it has a '{segment}' segment"
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    if segments[0].casefold() == RESERVED_FOLDER:
        return f"the folder {RESERVED_FOLDER}/ is reserved for the bundle's manifest"
    if unicodedata.normalize("NFC", path) != path:
        return "it is not in Unicode normal form NFC"
    return None


def check_path(path: str) -> str:
    """Return `path` if it is a safe relative POSIX path in NFC, else raise UnsafePath."""
    problem = _path_problem(path)
    if problem is not None:
        shown = _show(path) if isinstance(path, str) else f"of type {type(path).__name__}"
        raise UnsafePath(f"unsafe path {shown}: {problem}")
    return path


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def _check_collisions(paths: Iterable[str]) -> None:
    """Refuse paths that would land on the same file on a case-insensitive file system,
    and a path that is both a file and a folder."""
    seen: dict[str, str] = {}
    for path in paths:
        other = seen.setdefault(_fold(path), path)
        if other != path:
            raise UnsafePath(f"the paths {_show(other)} and {_show(path)} differ only in case")
    folders = {_fold(path).rsplit("/", 1)[0] for path in seen.values() if "/" in path}
    prefixes = {"/".join(f.split("/")[: i + 1]) for f in folders for i in range(f.count("/") + 1)}
    for folded, path in seen.items():
        if folded in prefixes:
            raise UnsafePath(f"the path {_show(path)} is both a file and a folder")


def normalise_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """Paths to NFC, every path checked, collisions refused; the builder's view of the files."""
    out: dict[str, bytes] = {}
    for name, data in files.items():
        if not isinstance(name, str):
            raise UnsafePath(f"a path must be text, not {type(name).__name__}")
        path = check_path(unicodedata.normalize("NFC", name))
        if path in out:
            raise UnsafePath(
                f"the path {_show(path)} appears twice, in two Unicode normal forms (NFC and NFD)"
            )
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BundleError(
                f"the file {_show(path)} holds {type(data).__name__}, not bytes",
                hint="Pass file contents as bytes (e.g. text.encode()).",
            )
        out[path] = bytes(data)
    _check_collisions(out)
    return dict(sorted(out.items()))


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _check_limits(count: int, total: int, limits: Limits) -> None:
    if count > limits.max_files:
        raise BundleTooLarge(f"the bundle has {count} files; the limit is {limits.max_files} files")
    if total > limits.max_total_bytes:
        raise BundleTooLarge(
            f"the bundle holds {total} bytes ({_mib(total)}); the limit is "
            f"{limits.max_total_bytes} bytes ({_mib(limits.max_total_bytes)})"
        )


def _check_entrypoint(entrypoint: str, paths: Iterable[str]) -> None:
    if not isinstance(entrypoint, str) or entrypoint not in set(paths):
        shown = _show(entrypoint) if isinstance(entrypoint, str) else type(entrypoint).__name__
        raise BadEntrypoint(f"the entrypoint {shown} is not one of the bundle's files")
    if not entrypoint.endswith(".py"):
        raise BadEntrypoint(f"the entrypoint {_show(entrypoint)} is not a .py file")


def read_directory(root: Path, *, limits: Limits = Limits()) -> dict[str, bytes]:
    """Read a code folder into {relative POSIX path: bytes}; symlinks and special files refused."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(
            f"{str(root)!r} is not a folder", hint="Pass the folder that holds the code."
        )
    raw: dict[str, bytes] = {}
    total = 0

    def walk(folder: Path, prefix: str) -> None:
        nonlocal total
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = f"{prefix}{entry.name}"
                if entry.is_symlink():
                    raise UnsafePath(f"{_show(rel)} is a symbolic link; bundles refuse links")
                if entry.is_dir(follow_symlinks=False):
                    walk(Path(entry.path), f"{rel}/")
                    continue
                _check_limits(len(raw) + 1, total, limits)
                data = _read_regular(Path(entry.path), rel, total, limits)
                total += len(data)
                raw[rel] = data

    walk(root, "")
    return normalise_files(raw)


def _read_regular(path: Path, rel: str, total: int, limits: Limits) -> bytes:
    """Read one file without passing the size limit, refusing one swapped for a link meanwhile."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnsafePath(f"cannot open {_show(rel)}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # a FIFO, device or socket: never read it
            raise UnsafePath(f"{_show(rel)} is not a regular file or folder")
        budget = limits.max_total_bytes - total
        _check_limits(0, total + info.st_size, limits)
        data = handle.read(budget + 1)
        _check_limits(0, total + len(data), limits)
        return data


# -- manifest ------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise MalformedManifest(f"the manifest holds the non-JSON number {name}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode(data: bytes, limits: Limits) -> dict[str, Any]:
    if len(data) > limits.max_manifest_bytes:
        raise BundleTooLarge(
            f"the manifest has {len(data)} bytes; the limit is {limits.max_manifest_bytes} bytes"
        )
    try:
        doc = json.loads(
            data.decode("utf-8"),
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedManifest(f"the manifest is not UTF-8 JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise MalformedManifest("the manifest is not a JSON object")
    if doc.get("version") != FORMAT_VERSION or not _is_int(doc.get("version")):
        raise UnsupportedBundleVersion(
            f"the manifest has format version {str(doc.get('version'))[:20]!r}; "
            f"this flame_lab reads version {FORMAT_VERSION}"
        )
    unknown = doc.keys() - _MANIFEST_FIELDS - _OPTIONAL_FIELDS
    missing = _MANIFEST_FIELDS - doc.keys()
    if unknown:
        raise MalformedManifest(f"the manifest has unknown fields {sorted(map(_show, unknown))}")
    if missing:
        raise MalformedManifest(f"the manifest lacks the fields {sorted(missing)}")
    return doc


def _file_entries(raw: Any) -> tuple[FileEntry, ...]:
    if not isinstance(raw, list):
        raise MalformedManifest("the manifest's files are not a list")
    entries = []
    for item in raw:
        if not isinstance(item, dict) or item.keys() != _FILE_FIELDS:
            raise MalformedManifest("a manifest file entry must hold exactly path, size, sha256")
        path, size, digest = item["path"], item["size"], item["sha256"]
        if not isinstance(path, str):
            raise MalformedManifest("a manifest file path is not text")
        if not _is_int(size) or size < 0:
            raise MalformedManifest(f"the size of {_show(path)} is not a non-negative integer")
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            raise MalformedManifest(f"the sha256 of {_show(path)} is not 64 lowercase hex digits")
        entries.append(FileEntry(path, size, digest))
    paths = [entry.path for entry in entries]
    if len(set(paths)) != len(paths):
        dupes = sorted({_show(p) for p in paths if paths.count(p) > 1})
        raise DuplicatePath(f"the manifest lists {', '.join(dupes)} more than once")
    if paths != sorted(paths):
        raise MalformedManifest("the manifest's files are not sorted by path")
    for path in paths:
        check_path(path)
    _check_collisions(paths)
    return tuple(entries)


def _recipients(raw: Any) -> tuple[PublicIdentity, ...]:
    if not isinstance(raw, list) or not raw:
        raise MalformedManifest("the manifest names no recipients")
    idents = []
    for item in raw:
        if not isinstance(item, dict) or item.keys() != {"keyId", "x25519", "ed25519"}:
            raise MalformedManifest("a recipient must hold exactly keyId, x25519, ed25519")
        try:
            ident = PublicIdentity.from_dict(item)
        except FlameLabError as exc:
            raise MalformedManifest(
                f"a recipient is not a public identity: {exc.message}"
            ) from None
        if ident.to_dict() != item:
            raise MalformedManifest("a recipient's keys are not in canonical base64")
        idents.append(ident)
    ids = [ident.key_id for ident in idents]
    if len(set(ids)) != len(ids):
        raise MalformedManifest("the manifest names a recipient twice")
    return tuple(idents)


def _run_nonce(raw: Any) -> str:
    if isinstance(raw, str):
        try:
            if len(unb64(raw)) == NONCE_BYTES and b64(unb64(raw)) == raw:
                return raw
        except FlameLabError:
            pass
    raise MalformedManifest(f"the run nonce is not {NONCE_BYTES} bytes in base64")


def parse_manifest(data: bytes, *, limits: Limits = Limits()) -> Manifest:
    """Decode and check the manifest's structure; says nothing about who signed it."""
    doc = _decode(data, limits)
    files = _file_entries(doc["files"])
    _check_limits(len(files), sum(entry.size for entry in files), limits)
    _check_entrypoint(doc["entrypoint"], (entry.path for entry in files))
    created, expires = doc["createdAt"], doc["expiresAt"]
    if not (_is_int(created) and _is_int(expires)) or created < 0 or expires <= created:
        raise MalformedManifest("createdAt and expiresAt must be integers, createdAt first")
    signer = doc["signer"]
    if not isinstance(signer, str) or not _KEY_ID.fullmatch(signer):
        raise MalformedManifest("the signer is not a key id (32 lowercase hex digits)")
    manifest = Manifest(
        version=doc["version"],
        files=files,
        entrypoint=doc["entrypoint"],
        recipients=_recipients(doc["recipients"]),
        run_nonce=_run_nonce(doc["runNonce"]),
        created_at=created,
        expires_at=expires,
        signer=signer,
        binding=Binding.from_dict(doc["binding"]) if "binding" in doc else None,
    )
    try:
        canonical = canonical_json(doc)
    except (FlameLabError, UnicodeEncodeError) as exc:
        reason = exc.message if isinstance(exc, FlameLabError) else "it holds a lone surrogate"
        raise MalformedManifest(f"the manifest is not canonical JSON: {reason}") from None
    if canonical != data:
        raise MalformedManifest(
            "the manifest is not canonical JSON (re-encoding it gives other bytes)"
        )
    return manifest


# -- build and verify ----------------------------------------------------------------------
def build(
    files: Mapping[str, bytes],
    entrypoint: str,
    signer: Identity,
    recipients: Sequence[PublicIdentity] | None = None,
    *,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: int | None = None,
    limits: Limits = Limits(),
    binding: Binding | None = None,
) -> SignedBundle:
    """Pin the files, name the entrypoint and recipients, and sign; same rules as `verify`.
    Nodes run only bundles with a ``binding`` that matches the analysis they reach them in."""
    if not _is_int(ttl_seconds) or ttl_seconds <= 0:
        raise BundleError(
            f"the bundle lifetime must be a positive number of seconds, not {ttl_seconds!r}",
            hint="Pass ttl_seconds as a positive integer.",
        )
    if recipients is not None:
        recipients = tuple(recipients)
        if not recipients or len({r.key_id for r in recipients}) != len(recipients):
            raise BundleError(
                "the recipients must be at least one public identity, each named once",
                hint="Leave recipients out to seal results to yourself alone.",
            )
    normal = normalise_files(files)
    _check_limits(len(normal), sum(len(data) for data in normal.values()), limits)
    if isinstance(entrypoint, str):
        entrypoint = unicodedata.normalize("NFC", entrypoint)
    _check_entrypoint(entrypoint, normal)
    created = int(time.time()) if now is None else now
    manifest = Manifest(
        version=FORMAT_VERSION,
        files=tuple(
            FileEntry(path, len(data), hashlib.sha256(data).hexdigest())
            for path, data in normal.items()
        ),
        entrypoint=entrypoint,
        recipients=recipients if recipients is not None else (signer.public,),
        run_nonce=b64(secrets.token_bytes(NONCE_BYTES)),
        created_at=created,
        expires_at=created + ttl_seconds,
        signer=signer.key_id,
        binding=binding,
    )
    data = manifest.to_bytes()
    parse_manifest(data, limits=limits)  # the builder refuses what a node would refuse
    signature = signer.signing_key.sign(SIGNATURE_DOMAIN + data)
    return SignedBundle(data, signature, normal)


def verify(
    bundle: SignedBundle,
    trusted: Iterable[PublicIdentity],
    *,
    now: int | None = None,
    limits: Limits = Limits(),
    clock_skew: int = CLOCK_SKEW_SECONDS,
) -> Manifest:
    """Return the manifest if a trusted key signed it, it is in date and every file matches."""
    total = sum(len(data) for data in bundle.files.values())
    _check_limits(len(bundle.files), total, limits)
    manifest = parse_manifest(bundle.manifest_bytes, limits=limits)

    keys = {ident.key_id: ident for ident in trusted}
    signer = keys.get(manifest.signer)
    if signer is None:
        raise UntrustedSigner(
            f"the bundle is signed by key {manifest.signer}, which is not among the "
            f"{len(keys)} trusted researcher keys"
        )
    try:
        if len(bundle.signature) != SIGNATURE_BYTES:
            raise InvalidSignature
        signer.signing_key.verify(bundle.signature, SIGNATURE_DOMAIN + bundle.manifest_bytes)
    except InvalidSignature:
        raise BadBundleSignature(
            f"the bundle's signature does not verify with key {manifest.signer}"
        ) from None

    clock = int(time.time()) if now is None else now
    if clock > manifest.expires_at:
        raise BundleExpired(
            f"the bundle expired at {manifest.expires_at} (epoch seconds); it is now {clock}"
        )
    if manifest.created_at > clock + clock_skew:
        raise BundleNotYetValid(
            f"the bundle was created at {manifest.created_at} (epoch seconds), "
            f"{manifest.created_at - clock} s in this machine's future"
        )

    _check_files(manifest, bundle.files)
    return manifest


def _check_files(manifest: Manifest, received: Mapping[str, bytes]) -> None:
    """Exactly the signed files, each with its signed size and hash; never shows contents."""
    expected = {entry.path for entry in manifest.files}
    missing, extra = sorted(expected - received.keys()), sorted(received.keys() - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(_show, missing[:5]))}")
        if extra:
            parts.append(f"not signed {', '.join(map(_show, extra[:5]))}")
        raise TamperedBundle(f"the files differ from the signed manifest: {'; '.join(parts)}")
    for entry in manifest.files:
        data = received[entry.path]
        if len(data) != entry.size:
            raise TamperedBundle(
                f"{_show(entry.path)} has {len(data)} bytes; the signed manifest says {entry.size}"
            )
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise TamperedBundle(f"{_show(entry.path)} differs from the signed file (SHA-256)")
