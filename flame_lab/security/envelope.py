"""Sealed results: a node encrypts a result to its researchers and signs it; only they open it.

Container, version 1 (integers big-endian)::

    size   field
    4      magic b"FLRS"
    1      container version (1)
    4      H, the header length (1 .. 65536)
    H      header: canonical JSON of ResultHeader (camelCase keys, see ResultHeader.to_json)
    4      W, the wraps length (3 .. 65536)
    W      wraps: u16 count, then per recipient in the header's order (sorted key ids):
           u8 id length, key id (ASCII), u16 wrap length, HPKE enc || ciphertext of the key
    ...    chunks: max(1, ceil(length / chunkSize)) AES-256-GCM ciphertexts of
           min(chunkSize, rest) + 16 bytes each; their sizes follow from the header alone
    64     the node's Ed25519 signature

Cryptography (``\\0`` ends each domain label):

- header hash ``hh = SHA-256("flame-lab/result-header/v1\\0" || header)``;
- chunk ``i`` of ``n``: AES-256-GCM under a random 32-byte content key, nonce = the header's
  7-byte random ``noncePrefix`` || u32 ``i`` || u8 (1 if ``i == n - 1`` else 0), AAD = ``hh``;
  a dropped, reordered, truncated or appended chunk fails its tag or the length check;
- wrap: HPKE (RFC 9180, base mode, X25519 / HKDF-SHA256 / AES-256-GCM) of the content key to
  each recipient's X25519 key, ``info = "flame-lab/result-key/v1\\0" || key id || "\\0" || hh``;
- signature: Ed25519 by the node over ``"flame-lab/result-signature/v1\\0" || d`` with
  ``d = SHA-256("flame-lab/sealed-result/v1\\0" || prelude || SHA-256(chunk 0) || ...)``
  where the prelude is every byte before the chunks: a hash list, so that sealing and opening
  stream, and chunk hashes are computed on several cores (hashlib releases the GIL).

Opening order (nothing is decrypted before the signature holds, nothing returned partially):
structure and size, node signature against the caller's trusted node keys (a key carried in a
blob is never trusted), header against the caller's ``Expected`` submission record, replay
guard (see replay.py: the identical blob may be re-opened, a different blob with an opened
(analysis, node, sequence) is ReplayedResult), unwrap (NotARecipient), decrypt every chunk.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flame_lab.errors import (
    EnvelopeError,
    FlameLabError,
    NotARecipient,
    TamperedResult,
)
from flame_lab.security.canonical import canonical_json
from flame_lab.security.keys import Identity, NodeIdentity, NodePublicIdentity, PublicIdentity
from flame_lab.security.replay import ReplayGuard, ResultKey

MAGIC = b"FLRS"
CONTAINER_VERSION = 1
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 4 << 20
# The normal range is 1-4 MiB; down to 1 KiB is accepted so that small results and tests
# exercise several chunks cheaply.
MIN_CHUNK_SIZE = 1 << 10
MAX_CHUNKS = 1 << 32  # the nonce's 4-byte counter
MAX_HEADER = 1 << 16
MAX_WRAPS = 1 << 16
MAX_RECIPIENTS = 256
TAG_SIZE = 16
SIGNATURE_SIZE = 64
NONCE_PREFIX_SIZE = 7
KEY_SIZE = 32

_HEADER_DOMAIN = b"flame-lab/result-header/v1\x00"
_WRAP_DOMAIN = b"flame-lab/result-key/v1\x00"
_DIGEST_DOMAIN = b"flame-lab/sealed-result/v1\x00"
_SIGNATURE_DOMAIN = b"flame-lab/result-signature/v1\x00"
_PRELUDE = struct.Struct(">4sBI")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_KEY_ID = re.compile(r"[0-9a-f]{32}")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_MAX_TEXT = 1024
_WORKERS = min(4, os.cpu_count() or 1)
_PARALLEL_MIN_CHUNKS = 8

_FIELDS = {
    "version",
    "analysisId",
    "nodeId",
    "bundleHash",
    "runNonce",
    "sequence",
    "count",
    "createdAt",
    "contentType",
    "recipients",
    "chunkSize",
    "length",
    "noncePrefix",
}


def _tampered(what: str) -> TamperedResult:
    return TamperedResult(f"The sealed result is malformed: {what}.")


# -- the header ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResultHeader:
    """What a sealed result says about itself; bound to every chunk and every wrap."""

    analysis_id: str
    node_id: str
    bundle_hash: str
    run_nonce: str
    sequence: int
    created_at: datetime
    content_type: str
    recipient_ids: tuple[str, ...]
    chunk_size: int
    length: int
    nonce_prefix: bytes
    version: int = FORMAT_VERSION
    count: int = 1  # results in the whole set (sequences 0 .. count-1): the set is signed too

    @property
    def chunk_count(self) -> int:
        return chunk_count(self.length, self.chunk_size)

    @property
    def key(self) -> ResultKey:
        return ResultKey(self.analysis_id, self.node_id, self.sequence)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "analysisId": self.analysis_id,
            "nodeId": self.node_id,
            "bundleHash": self.bundle_hash,
            "runNonce": self.run_nonce,
            "sequence": self.sequence,
            "count": self.count,
            "createdAt": self.created_at.strftime(_TIME_FORMAT),
            "contentType": self.content_type,
            "recipients": list(self.recipient_ids),
            "chunkSize": self.chunk_size,
            "length": self.length,
            "noncePrefix": base64.urlsafe_b64encode(self.nonce_prefix).rstrip(b"=").decode(),
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> ResultHeader:
        """Strict: unknown fields, wrong types or a non-canonical encoding are TamperedResult."""
        try:
            raw = _json_loads_strict(data)
        except ValueError as exc:
            raise _tampered(f"the header is not JSON ({exc})") from None
        if not isinstance(raw, dict) or set(raw) != _FIELDS:
            raise _tampered("the header does not have the fields of a result header")
        if raw["version"] != FORMAT_VERSION or isinstance(raw["version"], bool):
            raise EnvelopeError(
                f"The sealed result uses header format {repr(raw['version'])[:20]}; this flame_lab "
                f"reads format {FORMAT_VERSION}.",
                hint="Upgrade flame_lab, or ask the node admin which version sealed it.",
            )
        texts = {k: raw[k] for k in ("analysisId", "nodeId", "bundleHash", "runNonce")}
        texts["contentType"] = raw["contentType"]
        for name, value in texts.items():
            if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT:
                raise _tampered(f"header field {name} is not a short non-empty string")
        ints = {k: raw[k] for k in ("sequence", "count", "chunkSize", "length")}
        for name, value in ints.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _tampered(f"header field {name} is not a non-negative integer")
        recipients = raw["recipients"]
        if (
            not isinstance(recipients, list)
            or not 0 < len(recipients) <= MAX_RECIPIENTS
            or not all(isinstance(r, str) and _KEY_ID.fullmatch(r) for r in recipients)
            or recipients != sorted(set(recipients))
        ):
            raise _tampered("header field recipients is not a sorted list of key ids")
        try:
            created = datetime.strptime(raw["createdAt"], _TIME_FORMAT).replace(tzinfo=UTC)
            text = raw["noncePrefix"]
            prefix = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (TypeError, ValueError):
            raise _tampered("header field createdAt or noncePrefix is unreadable") from None
        header = cls(
            analysis_id=texts["analysisId"],
            node_id=texts["nodeId"],
            bundle_hash=texts["bundleHash"],
            run_nonce=texts["runNonce"],
            sequence=ints["sequence"],
            count=ints["count"],
            created_at=created,
            content_type=texts["contentType"],
            recipient_ids=tuple(recipients),
            chunk_size=ints["chunkSize"],
            length=ints["length"],
            nonce_prefix=prefix,
        )
        try:
            header.validate()
            canonical = header.to_bytes()
        except FlameLabError as exc:
            raise _tampered(exc.message) from None
        if canonical != bytes(data):
            raise _tampered("the header is not in canonical form")
        return header

    def validate(self) -> None:
        """The limits both ends keep; raises EnvelopeError."""
        if not 0 <= self.sequence < self.count:
            raise EnvelopeError(
                f"sequence {self.sequence} is outside the result set of {self.count}",
                hint="Number a node's results 0 .. count-1.",
            )
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise EnvelopeError(
                f"chunk size {self.chunk_size} is outside {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}",
                hint="Use the default chunk size of 1 MiB.",
            )
        if len(self.nonce_prefix) != NONCE_PREFIX_SIZE:
            raise EnvelopeError("the nonce prefix must be 7 bytes")
        if self.length > self.chunk_size * MAX_CHUNKS:
            raise EnvelopeError(
                f"a payload of {self.length} bytes needs more than 2**32 chunks",
                hint="Use a larger chunk size.",
            )


def _json_loads_strict(data: bytes) -> Any:
    """JSON without NaN/Infinity and without duplicate keys (canonical input only)."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise ValueError("duplicate key")
        return out

    try:
        text = bytes(data).decode("utf-8")
        return json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


def chunk_count(length: int, chunk_size: int) -> int:
    """At least one chunk, so that even an empty payload carries a final (last-flag) chunk."""
    return max(1, -(-length // chunk_size))


def chunk_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    """7-byte prefix || 4-byte big-endian counter || last flag (12 bytes)."""
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def chunk_spans(length: int, chunk_size: int) -> Iterator[tuple[int, int, int]]:
    """(index, plaintext start, plaintext end) of every chunk."""
    n = chunk_count(length, chunk_size)
    for i in range(n):
        yield i, i * chunk_size, min(length, (i + 1) * chunk_size)


def sealed_size(header_len: int, wraps_len: int, length: int, chunk_size: int) -> int:
    """Exact size of a container; a blob of any other size is refused."""
    body = length + TAG_SIZE * chunk_count(length, chunk_size)
    return _PRELUDE.size + header_len + _U32.size + wraps_len + body + SIGNATURE_SIZE


def header_hash(header_bytes: bytes) -> bytes:
    return hashlib.sha256(_HEADER_DOMAIN + header_bytes).digest()


def _wrap_info(kid: str, hh: bytes) -> bytes:
    return _WRAP_DOMAIN + kid.encode("ascii") + b"\x00" + hh


def _encode_wraps(wraps: Sequence[tuple[str, bytes]]) -> bytes:
    out = [_U16.pack(len(wraps))]
    for kid, wrapped in wraps:
        raw = kid.encode("ascii")
        out += [bytes([len(raw)]), raw, _U16.pack(len(wrapped)), wrapped]
    return b"".join(out)


def _decode_wraps(data: bytes, recipients: tuple[str, ...]) -> dict[str, bytes]:
    """Parse the wraps list; it must name exactly the header's recipients, in order."""
    try:
        (count,) = _U16.unpack_from(data, 0)
        pos, found = _U16.size, []
        for _ in range(count):
            size = data[pos]
            kid = data[pos + 1 : pos + 1 + size].decode("ascii")
            pos += 1 + size
            (wsize,) = _U16.unpack_from(data, pos)
            wrapped = data[pos + 2 : pos + 2 + wsize]
            if len(wrapped) != wsize:
                raise ValueError("short wrap")
            pos += 2 + wsize
            found.append((kid, bytes(wrapped)))
    except (IndexError, ValueError, struct.error, UnicodeDecodeError):
        raise _tampered("the key wraps are unreadable") from None
    if pos != len(data):
        raise _tampered("the key wraps are followed by stray bytes")
    if tuple(kid for kid, _ in found) != recipients:
        raise _tampered("the key wraps do not match the header's recipients")
    return dict(found)


def _sha256(data: Any) -> bytes:
    return hashlib.sha256(data).digest()


def _signed_digest(prelude: bytes, chunk_hashes: Sequence[bytes]) -> bytes:
    """What the node signs: the prelude and the list of chunk ciphertext hashes."""
    outer = hashlib.sha256(_DIGEST_DOMAIN)
    outer.update(prelude)
    outer.update(b"".join(chunk_hashes))
    return outer.digest()


def _hash_range(buffer: memoryview, start: int, end: int) -> bytes:
    return _sha256(buffer[start:end])


class _Inline:
    """An executor that runs work at once: a few chunks are not worth a thread."""

    def submit(self, fn: Callable[..., bytes], *args: Any) -> Future[bytes]:
        future: Future[bytes] = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _executor(chunks: int) -> ThreadPoolExecutor | _Inline:
    """Threads for many chunks: hashlib releases the GIL, so chunk hashes use every core."""
    if chunks < _PARALLEL_MIN_CHUNKS or _WORKERS < 2:
        return _Inline()
    return ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="flame-lab-hash")


def _output_buffer(size: int) -> io.BytesIO:
    """A zeroed BytesIO of ``size`` bytes whose getvalue() hands over its buffer uncopied
    (CPython), so that a sealed or opened payload needs one payload-sized allocation."""
    out = io.BytesIO()
    if size:
        out.seek(size - 1)
        out.write(b"\x00")
    return out


def _blob_digest(signed: bytes, signature: bytes) -> str:
    """Names one blob exactly (replay records, caches): equal only for identical blobs."""
    return hashlib.sha256(signed + signature).hexdigest()


# -- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    """The researcher's own submission record: what a result for it must say."""

    analysis_id: str
    bundle_hash: str
    run_nonce: str
    recipient_ids: frozenset[str]
    node_id: str | None = None
    sequence: int | None = None


@dataclass(frozen=True)
class OpenedResult:
    """A verified, decrypted result; ``digest`` names the blob it came from."""

    header: ResultHeader
    payload: bytes = field(repr=False)
    digest: str

    def __repr__(self) -> str:
        h = self.header
        return (
            f"OpenedResult(analysis_id={h.analysis_id!r}, node_id={h.node_id!r}, "
            f"sequence={h.sequence}, content_type={h.content_type!r}, "
            f"length={len(self.payload)}, digest={self.digest[:16]!r})"
        )


@dataclass(frozen=True)
class OpenedStream:
    """What open_stream / open_file return: the plaintext went to the writer or file."""

    header: ResultHeader
    digest: str


# -- sealing ---------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class _Sealing:
    """Header, prelude bytes and the content-key cipher of one result being sealed."""

    header: ResultHeader
    prelude: bytes
    aad: bytes
    aead: AESGCM

    def __repr__(self) -> str:
        return f"_Sealing(analysis_id={self.header.analysis_id!r})"


def _start(
    length: int,
    *,
    analysis_id: str,
    node_id: str,
    bundle_hash: str,
    run_nonce: str,
    sequence: int,
    content_type: str,
    recipients: Sequence[PublicIdentity],
    chunk_size: int,
    now: datetime | None,
    count: int | None = None,
) -> _Sealing:
    if not recipients:
        raise EnvelopeError(
            "A result must be sealed to at least one recipient.",
            hint="Pass the researchers' public identities from the signed bundle.",
        )
    by_id = {r.key_id: r for r in recipients}
    if len(by_id) > MAX_RECIPIENTS:
        raise EnvelopeError(f"At most {MAX_RECIPIENTS} recipients are supported.")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        raise EnvelopeError("The sequence number must be a non-negative integer.")
    count = sequence + 1 if count is None else count
    if isinstance(count, bool) or not isinstance(count, int) or count <= sequence:
        raise EnvelopeError("The result count must be an integer above the sequence number.")
    for name, value in (
        ("analysis_id", analysis_id),
        ("node_id", node_id),
        ("bundle_hash", bundle_hash),
        ("run_nonce", run_nonce),
        ("content_type", content_type),
    ):
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT:
            raise EnvelopeError(f"{name} must be a non-empty string of at most {_MAX_TEXT}.")
    created = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    header = ResultHeader(
        analysis_id=analysis_id,
        node_id=node_id,
        bundle_hash=bundle_hash,
        run_nonce=run_nonce,
        sequence=sequence,
        count=count,
        created_at=created,
        content_type=content_type,
        recipient_ids=tuple(sorted(by_id)),
        chunk_size=chunk_size,
        length=length,
        nonce_prefix=os.urandom(NONCE_PREFIX_SIZE),
    )
    header.validate()
    header_bytes = header.to_bytes()
    if len(header_bytes) > MAX_HEADER:
        raise EnvelopeError("The result header is too long; shorten the ids.")
    hh = header_hash(header_bytes)
    content_key = _new_content_key()
    wraps = [
        (kid, _SUITE.encrypt(content_key, by_id[kid].encryption_key, info=_wrap_info(kid, hh)))
        for kid in header.recipient_ids
    ]
    aead = AESGCM(content_key)
    del content_key
    wraps_bytes = _encode_wraps(wraps)
    prelude = b"".join(
        [
            _PRELUDE.pack(MAGIC, CONTAINER_VERSION, len(header_bytes)),
            header_bytes,
            _U32.pack(len(wraps_bytes)),
            wraps_bytes,
        ]
    )
    return _Sealing(header, prelude, hh, aead)


def _new_content_key() -> bytes:
    """A fresh 32-byte AES-256 key per result; it leaves this module only inside HPKE wraps."""
    return AESGCM.generate_key(bit_length=256)


def _sign(node: NodeIdentity, digest: bytes) -> bytes:
    return node.signing_key.sign(_SIGNATURE_DOMAIN + digest)


def seal(
    payload: bytes | bytearray | memoryview,
    *,
    analysis_id: str,
    node_id: str,
    bundle_hash: str,
    run_nonce: str,
    sequence: int,
    content_type: str,
    recipients: Sequence[PublicIdentity],
    node: NodeIdentity,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    now: datetime | None = None,
    count: int | None = None,
) -> bytes:
    """Encrypt ``payload`` to ``recipients`` and sign it as ``node``; returns the container."""
    view = memoryview(payload).cast("B")
    sealing = _start(
        len(view),
        analysis_id=analysis_id,
        node_id=node_id,
        bundle_hash=bundle_hash,
        run_nonce=run_nonce,
        sequence=sequence,
        content_type=content_type,
        recipients=recipients,
        chunk_size=chunk_size,
        now=now,
        count=count,
    )
    header = sealing.header
    total = len(sealing.prelude) + len(view) + TAG_SIZE * header.chunk_count + SIGNATURE_SIZE
    out_io = _output_buffer(total)
    with out_io.getbuffer() as out:
        pos = len(sealing.prelude)
        out[:pos] = sealing.prelude
        last = header.chunk_count - 1
        # Each chunk is hashed on a worker thread while the next one is being encrypted.
        with _executor(header.chunk_count) as pool:
            hashes = []
            for i, start, end in chunk_spans(header.length, header.chunk_size):
                size = end - start + TAG_SIZE
                nonce = chunk_nonce(header.nonce_prefix, i, i == last)
                sealing.aead.encrypt_into(
                    nonce, view[start:end], sealing.aad, out[pos : pos + size]
                )
                hashes.append(pool.submit(_hash_range, out, pos, pos + size))
                pos += size
            digest = _signed_digest(sealing.prelude, [h.result() for h in hashes])
        out[pos:] = _sign(node, digest)
    return out_io.getvalue()


def _read_exact(reader: BinaryIO, size: int) -> bytes:
    parts, missing = [], size
    while missing:
        part = reader.read(missing)
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def seal_stream(
    reader: BinaryIO,
    writer: BinaryIO,
    *,
    length: int,
    analysis_id: str,
    node_id: str,
    bundle_hash: str,
    run_nonce: str,
    sequence: int,
    content_type: str,
    recipients: Sequence[PublicIdentity],
    node: NodeIdentity,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    now: datetime | None = None,
    count: int | None = None,
) -> ResultHeader:
    """Like seal, for payloads too big for memory: reads exactly ``length`` bytes."""
    sealing = _start(
        length,
        analysis_id=analysis_id,
        node_id=node_id,
        bundle_hash=bundle_hash,
        run_nonce=run_nonce,
        sequence=sequence,
        content_type=content_type,
        recipients=recipients,
        chunk_size=chunk_size,
        now=now,
        count=count,
    )
    header = sealing.header
    hashes = []
    writer.write(sealing.prelude)
    last = header.chunk_count - 1
    for i, start, end in chunk_spans(length, header.chunk_size):
        data = _read_exact(reader, end - start)
        if len(data) != end - start:
            raise EnvelopeError(
                f"The payload stream ended after {start + len(data)} of {length} bytes.",
                hint="Pass the payload's exact length.",
            )
        ct = sealing.aead.encrypt(chunk_nonce(header.nonce_prefix, i, i == last), data, sealing.aad)
        hashes.append(_sha256(ct))
        writer.write(ct)
    if reader.read(1):
        raise EnvelopeError(
            f"The payload stream is longer than the {length} bytes announced.",
            hint="Pass the payload's exact length.",
        )
    writer.write(_sign(node, _signed_digest(sealing.prelude, hashes)))
    return header


# -- opening ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Prelude:
    header: ResultHeader
    header_bytes: bytes
    wraps_bytes: bytes
    raw: bytes  # every byte before the chunks, as read

    @property
    def size(self) -> int:
        return len(self.raw)


def _read_prelude(read: Callable[[int], bytes]) -> _Prelude:
    """Magic, version and header: unverified, parsed strictly."""
    magic, version, header_len = _PRELUDE.unpack(read(_PRELUDE.size))
    if magic != MAGIC:
        raise _tampered("it does not start with the flame_lab result magic")
    if version != CONTAINER_VERSION:
        raise EnvelopeError(
            f"The sealed result uses container version {version}; this flame_lab reads "
            f"version {CONTAINER_VERSION}.",
            hint="Upgrade flame_lab, or ask the node admin which version sealed it.",
        )
    if not 0 < header_len <= MAX_HEADER:
        raise _tampered("the header length is out of range")
    header_bytes = read(header_len)
    header = ResultHeader.from_bytes(header_bytes)
    (wraps_len,) = _U32.unpack(read(_U32.size))
    if not _U16.size <= wraps_len <= MAX_WRAPS:
        raise _tampered("the key wraps length is out of range")
    wraps_bytes = read(wraps_len)
    raw = b"".join(
        [
            _PRELUDE.pack(magic, version, header_len),
            header_bytes,
            _U32.pack(wraps_len),
            wraps_bytes,
        ]
    )
    return _Prelude(header, header_bytes, wraps_bytes, raw)


def _memory_reader(view: memoryview) -> Callable[[int], bytes]:
    pos = 0

    def read(size: int) -> bytes:
        nonlocal pos
        if pos + size > len(view):
            raise _tampered("it ends early")
        pos += size
        return bytes(view[pos - size : pos])

    return read


def _stream_reader(reader: BinaryIO) -> Callable[[int], bytes]:
    def read(size: int) -> bytes:
        data = _read_exact(reader, size)
        if len(data) != size:
            raise _tampered("it ends early")
        return data

    return read


def peek_header(blob: bytes | bytearray | memoryview) -> ResultHeader:
    """The header, NOT verified: for display only (e.g. listing results before opening)."""
    return _read_prelude(_memory_reader(memoryview(blob).cast("B"))).header


def _verify_node(
    prelude: _Prelude,
    digest: bytes,
    signature: bytes,
    trusted_nodes: Mapping[str, NodePublicIdentity],
) -> None:
    node_id = prelude.header.node_id
    public = trusted_nodes.get(node_id)
    if public is None:
        raise TamperedResult(
            f"The result claims to come from node {node_id!r}, whose key you do not trust.",
            hint="Trust the node's published key (from the hub or its admin) and open it again.",
        )
    try:
        public.signing_key.verify(signature, _SIGNATURE_DOMAIN + digest)
    except InvalidSignature:
        raise TamperedResult(
            f"The node signature does not verify with the trusted key of node {node_id!r}."
        ) from None


def check_result_set(headers: Sequence[ResultHeader]) -> None:
    """A node's result set as it signed it: one count, and sequences 0 .. count-1 once each.
    A hub that drops, duplicates or swaps in a result from another set is TamperedResult."""
    if not headers:
        raise TamperedResult("The result set is empty.")
    counts = sorted({h.count for h in headers})
    if len(counts) != 1:
        raise TamperedResult(
            f"The result files disagree on how many results there are ({counts}): "
            "they do not come from one result set."
        )
    count = counts[0]
    seen = sorted(h.sequence for h in headers)
    duplicated = sorted({n for n in seen if seen.count(n) > 1})
    missing = sorted(set(range(count)) - set(seen))
    if duplicated or missing:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(str, missing[:10]))}")
        if duplicated:
            parts.append(f"repeated {', '.join(map(str, duplicated[:10]))}")
        raise TamperedResult(
            f"The node sealed {count} result(s), but the hub served another set "
            f"({'; '.join(parts)})."
        )


def _check_expected(header: ResultHeader, expected: Expected) -> None:
    shown = [
        ("analysis id", header.analysis_id, expected.analysis_id),
        ("node id", header.node_id, expected.node_id),
        ("sequence", header.sequence, expected.sequence),
    ]
    for label, got, want in shown:
        if want is not None and got != want:
            raise TamperedResult(
                f"The result's {label} is {got!r}, but your submission expects {want!r}."
            )
    if header.bundle_hash != expected.bundle_hash:
        raise TamperedResult("The result was computed for another bundle than you submitted.")
    if header.run_nonce != expected.run_nonce:
        raise TamperedResult("The result belongs to another run than the one you submitted.")
    if frozenset(header.recipient_ids) != frozenset(expected.recipient_ids):
        raise TamperedResult("The result is sealed to other recipients than you submitted to.")


def _admit(
    prelude: _Prelude,
    blob_digest: str,
    *,
    identity: Identity,
    expected: Expected,
    guard: ReplayGuard | None,
) -> tuple[AESGCM, bytes]:
    """After the signature: header vs expectations, replay, unwrap. Returns cipher and AAD."""
    header = prelude.header
    wraps = _decode_wraps(prelude.wraps_bytes, header.recipient_ids)
    _check_expected(header, expected)
    kid = identity.key_id
    if kid not in wraps:
        raise NotARecipient(f"The result is not sealed to your key {kid}.")
    if guard is not None:
        guard.check(header.key, blob_digest)
    hh = header_hash(prelude.header_bytes)
    try:
        content_key = _SUITE.decrypt(wraps[kid], identity.encryption_key, info=_wrap_info(kid, hh))
    except (InvalidTag, ValueError, TypeError):
        raise NotARecipient(
            f"The content key wrapped for {kid} does not open with your key."
        ) from None
    if len(content_key) != KEY_SIZE:
        raise _tampered("the wrapped content key has the wrong size")
    aead = AESGCM(content_key)
    del content_key
    return aead, hh


def _chunk_failed(i: int, n: int) -> TamperedResult:
    return TamperedResult(
        f"Chunk {i + 1} of {n} does not decrypt: chunks were altered, dropped or reordered."
    )


def open_sealed(
    blob: bytes | bytearray | memoryview,
    *,
    identity: Identity,
    trusted_nodes: Mapping[str, NodePublicIdentity],
    expected: Expected,
    guard: ReplayGuard | None,
    unauthenticated_origin: bool = False,
) -> OpenedResult:
    """Verify, check, unwrap and decrypt a whole result held in memory; raises on any doubt.

    ``unauthenticated_origin``: skip the node signature, for results an analysis sealed
    itself (flame_lab.security.selfseal) with a throwaway key; everything else is checked.
    """
    view = memoryview(blob).cast("B")
    prelude = _read_prelude(_memory_reader(view))
    header = prelude.header
    size = sealed_size(
        len(prelude.header_bytes), len(prelude.wraps_bytes), header.length, header.chunk_size
    )
    if len(view) != size:
        raise _tampered(f"it is {len(view)} bytes long where its header implies {size}")
    signature = bytes(view[size - SIGNATURE_SIZE :])
    ranges, pos = [], prelude.size
    for _, start, end in chunk_spans(header.length, header.chunk_size):
        ranges.append((pos, pos + end - start + TAG_SIZE))
        pos += end - start + TAG_SIZE
    with _executor(len(ranges)) as pool:
        futures = [pool.submit(_hash_range, view, a, b) for a, b in ranges]
        # Zeroing the output (no larger than the blob) overlaps with the hashing threads.
        out_io = _output_buffer(header.length)
        digest = _signed_digest(prelude.raw, [f.result() for f in futures])
    if not unauthenticated_origin:
        _verify_node(prelude, digest, signature, trusted_nodes)
    blob_digest = _blob_digest(digest, signature)
    aead, aad = _admit(prelude, blob_digest, identity=identity, expected=expected, guard=guard)

    n, last = header.chunk_count, header.chunk_count - 1
    with out_io.getbuffer() as out:
        for i, ((a, b), (_, start, end)) in enumerate(
            zip(ranges, chunk_spans(header.length, header.chunk_size), strict=True)
        ):
            nonce = chunk_nonce(header.nonce_prefix, i, i == last)
            try:
                aead.decrypt_into(nonce, view[a:b], aad, out[start:end])
            except InvalidTag:
                raise _chunk_failed(i, n) from None
    payload = out_io.getvalue()
    del out_io
    if guard is not None:
        guard.record(header.key, blob_digest)
    return OpenedResult(header, payload, blob_digest)


def open_stream(
    reader: BinaryIO,
    writer: BinaryIO,
    *,
    identity: Identity,
    trusted_nodes: Mapping[str, NodePublicIdentity],
    expected: Expected,
    guard: ReplayGuard | None,
) -> OpenedStream:
    """Open a result too big for memory from a seekable ``reader`` into ``writer``.

    Two passes: the first verifies the signature before anything is decrypted, the second
    decrypts and re-hashes. If it raises, ``writer`` may hold a partial plaintext that the
    caller must discard; ``open_file`` does that.
    """
    start = reader.tell()
    read = _stream_reader(reader)
    prelude = _read_prelude(read)
    header = prelude.header
    sizes = [
        end - begin + TAG_SIZE for _, begin, end in chunk_spans(header.length, header.chunk_size)
    ]
    hashes = [_sha256(read(size)) for size in sizes]
    signature = read(SIGNATURE_SIZE)
    if reader.read(1):
        raise _tampered("it has bytes after the signature")
    digest = _signed_digest(prelude.raw, hashes)
    _verify_node(prelude, digest, signature, trusted_nodes)
    blob_digest = _blob_digest(digest, signature)
    aead, aad = _admit(prelude, blob_digest, identity=identity, expected=expected, guard=guard)

    reader.seek(start)
    changed = TamperedResult("The sealed result changed on disk while it was being opened.")
    if read(len(prelude.raw)) != prelude.raw:
        raise changed
    n, last = header.chunk_count, header.chunk_count - 1
    for i, size in enumerate(sizes):
        ct = read(size)
        if _sha256(ct) != hashes[i]:
            raise changed
        try:
            writer.write(aead.decrypt(chunk_nonce(header.nonce_prefix, i, i == last), ct, aad))
        except InvalidTag:
            raise _chunk_failed(i, n) from None
    if guard is not None:
        guard.record(header.key, blob_digest)
    return OpenedStream(header, blob_digest)


def open_file(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    identity: Identity,
    trusted_nodes: Mapping[str, NodePublicIdentity],
    expected: Expected,
    guard: ReplayGuard | None,
) -> OpenedStream:
    """open_stream from file to file; ``destination`` appears only if everything verified."""
    target = Path(destination)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with open(source, "rb") as reader, os.fdopen(fd, "wb") as writer:
            opened = open_stream(
                reader,
                writer,
                identity=identity,
                trusted_nodes=trusted_nodes,
                expected=expected,
                guard=guard,
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return opened
