"""Tampering with sealed results: every change is refused, and never with a stray exception.

The chunk attacks are re-signed with the trusted node key, using the signature rule that
envelope.py documents, so that only the chunk logic (nonce counter, last flag, AAD, length)
stands between them and the researcher.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flame_lab.errors import EnvelopeError, NotARecipient, TamperedResult
from flame_lab.security.envelope import (
    Expected,
    ResultHeader,
    open_sealed,
    open_stream,
    peek_header,
    seal,
)
from flame_lab.security.keys import Identity, NodeIdentity
from flame_lab.security.replay import MemoryReplayGuard

CHUNK = 1024
DIGEST_DOMAIN = b"flame-lab/sealed-result/v1\x00"
SIGNATURE_DOMAIN = b"flame-lab/result-signature/v1\x00"

ALICE = Identity.generate()
BOB = Identity.generate()
NODE = NodeIdentity.generate()
PAYLOAD = os.urandom(3 * CHUNK + 100)  # four chunks: three full, one short


def _seal(payload: bytes = PAYLOAD, recipients=(ALICE,), **overrides) -> bytes:
    args = dict(
        analysis_id="analysis-1",
        node_id="aggregator",
        bundle_hash="f" * 64,
        run_nonce="run-1",
        sequence=0,
        content_type="application/octet-stream",
        recipients=[r.public for r in recipients],
        node=NODE,
        chunk_size=CHUNK,
    )
    args.update(overrides)
    return seal(payload, **args)


BLOB = _seal()
TWO_RECIPIENTS = _seal(recipients=(ALICE, BOB))


def _open(blob: bytes, identity: Identity = ALICE, recipients=(ALICE,)):
    return open_sealed(
        blob,
        identity=identity,
        trusted_nodes={"aggregator": NODE.public},
        expected=Expected(
            analysis_id="analysis-1",
            bundle_hash="f" * 64,
            run_nonce="run-1",
            recipient_ids=frozenset(r.key_id for r in recipients),
        ),
        guard=MemoryReplayGuard(),
    )


@dataclass
class Parts:
    """A container taken apart along its documented layout."""

    prelude: bytes  # magic, version, header, wraps
    header: bytes
    wraps: bytes
    chunks: list[bytes]

    @classmethod
    def of(cls, blob: bytes) -> Parts:
        (hlen,) = struct.unpack(">I", blob[5:9])
        (wlen,) = struct.unpack(">I", blob[9 + hlen : 13 + hlen])
        end = 13 + hlen + wlen
        header = peek_header(blob)
        body, chunks = blob[end:-64], []
        for i in range(header.chunk_count):
            size = min(header.chunk_size, header.length - i * header.chunk_size) + 16
            chunks.append(body[:size])
            body = body[size:]
        assert body == b""
        return cls(blob[:end], blob[9 : 9 + hlen], blob[13 + hlen : end], chunks)

    def signed(self, node: NodeIdentity = NODE) -> bytes:
        hashes = b"".join(hashlib.sha256(chunk).digest() for chunk in self.chunks)
        digest = hashlib.sha256(DIGEST_DOMAIN + self.prelude + hashes).digest()
        unsigned = self.prelude + b"".join(self.chunks)
        return unsigned + node.signing_key.sign(SIGNATURE_DOMAIN + digest)


def test_the_test_resigner_reproduces_a_valid_blob():
    """Guards the helper: an unchanged re-signed blob still opens."""
    assert Parts.of(BLOB).signed() == BLOB
    assert _open(Parts.of(BLOB).signed()).payload == PAYLOAD


# -- single-byte changes ---------------------------------------------------------------------
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=0, max_value=len(BLOB) - 1),
    mask=st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_change_is_refused_as_an_envelope_error(position, mask):
    tampered = bytearray(BLOB)
    tampered[position] ^= mask
    with pytest.raises(EnvelopeError):
        _open(bytes(tampered))


def test_flipping_a_bit_at_every_position_is_refused():
    for position in range(len(TWO_RECIPIENTS)):
        tampered = bytearray(TWO_RECIPIENTS)
        tampered[position] ^= 0x40
        with pytest.raises(EnvelopeError):
            _open(bytes(tampered), recipients=(ALICE, BOB))


@pytest.mark.parametrize("cut", [1, 63, 64, 65, 1000, len(BLOB) - 5])
def test_a_blob_cut_short_is_refused(cut):
    with pytest.raises(TamperedResult):
        _open(BLOB[:-cut])


@pytest.mark.parametrize("extra", [b"\x00", b"x" * 64, bytes(CHUNK + 16)])
def test_bytes_appended_after_the_signature_are_refused(extra):
    with pytest.raises(TamperedResult):
        _open(BLOB + extra)


def test_an_empty_or_foreign_blob_is_refused():
    for blob in (b"", b"FLRS", b"PK\x03\x04" + bytes(200), b"\x80\x04\x95" + bytes(100)):
        with pytest.raises(TamperedResult):
            _open(blob)


# -- chunk attacks, re-signed by the trusted node --------------------------------------------
def test_reordered_chunks_fail_even_when_re_signed():
    parts = Parts.of(BLOB)
    parts.chunks[0], parts.chunks[1] = parts.chunks[1], parts.chunks[0]
    with pytest.raises(TamperedResult, match="Chunk 1 of 4"):
        _open(parts.signed())


def test_a_dropped_middle_chunk_fails_even_when_re_signed():
    parts = Parts.of(BLOB)
    del parts.chunks[1]
    with pytest.raises(TamperedResult):
        _open(parts.signed())


def test_a_dropped_chunk_with_a_duplicate_in_its_place_fails_the_counter():
    parts = Parts.of(BLOB)
    parts.chunks[2] = parts.chunks[1]
    with pytest.raises(TamperedResult, match="Chunk 3 of 4"):
        _open(parts.signed())


def test_a_truncated_result_fails_even_when_re_signed():
    parts = Parts.of(BLOB)
    del parts.chunks[-1]
    with pytest.raises(TamperedResult):
        _open(parts.signed())


def _forge(plaintexts: list[bytes], nonces: list[tuple[int, bool]], length: int) -> bytes:
    """A blob built from scratch by someone holding the content key and the node key, with
    the chunk counters and last flags of their choice; everything else is well formed."""
    header = ResultHeader(
        analysis_id="analysis-1",
        node_id="aggregator",
        bundle_hash="f" * 64,
        run_nonce="run-1",
        sequence=0,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        content_type="application/octet-stream",
        recipient_ids=(ALICE.key_id,),
        chunk_size=CHUNK,
        length=length,
        nonce_prefix=os.urandom(7),
    )
    header_bytes = header.to_bytes()
    hh = hashlib.sha256(b"flame-lab/result-header/v1\x00" + header_bytes).digest()
    key = os.urandom(32)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    info = b"flame-lab/result-key/v1\x00" + ALICE.key_id.encode() + b"\x00" + hh
    wrap = suite.encrypt(key, ALICE.public.encryption_key, info=info)
    kid = ALICE.key_id.encode()
    wraps = struct.pack(">H", 1) + bytes([len(kid)]) + kid + struct.pack(">H", len(wrap)) + wrap
    aead = AESGCM(key)
    chunks = [
        aead.encrypt(header.nonce_prefix + i.to_bytes(4, "big") + bytes([last]), text, hh)
        for text, (i, last) in zip(plaintexts, nonces, strict=True)
    ]
    prelude = b"FLRS\x01" + struct.pack(">I", len(header_bytes)) + header_bytes
    prelude += struct.pack(">I", len(wraps)) + wraps
    return Parts(prelude, header_bytes, wraps, chunks).signed()


THREE = [os.urandom(CHUNK) for _ in range(3)]


def test_the_forging_helper_builds_a_blob_that_opens():
    """Guards the helper: with the documented counters and flags the forgery is valid."""
    blob = _forge(THREE, [(0, False), (1, False), (2, True)], 3 * CHUNK)
    assert _open(blob).payload == b"".join(THREE)


def test_a_stream_cut_after_a_non_final_chunk_fails_the_last_flag():
    blob = _forge(THREE, [(0, False), (1, False), (2, False)], 3 * CHUNK)
    with pytest.raises(TamperedResult, match="Chunk 3 of 3"):
        _open(blob)


def test_a_final_flag_before_the_end_fails():
    blob = _forge(THREE, [(0, False), (1, True), (2, True)], 3 * CHUNK)
    with pytest.raises(TamperedResult, match="Chunk 2 of 3"):
        _open(blob)


def test_a_skipped_counter_fails():
    blob = _forge(THREE, [(0, False), (2, False), (3, True)], 3 * CHUNK)
    with pytest.raises(TamperedResult, match="Chunk 2 of 3"):
        _open(blob)


def test_an_appended_chunk_fails_even_when_re_signed():
    parts = Parts.of(BLOB)
    parts.chunks.append(parts.chunks[0])
    with pytest.raises(TamperedResult):
        _open(parts.signed())


def test_a_chunk_from_another_result_fails_even_when_re_signed():
    other = Parts.of(_seal())
    parts = Parts.of(BLOB)
    parts.chunks[2] = other.chunks[2]
    with pytest.raises(TamperedResult, match="Chunk 3 of 4"):
        _open(parts.signed())


def test_a_changed_header_breaks_the_wraps_even_when_re_signed():
    parts = Parts.of(BLOB)
    changed = parts.header.replace(
        b'"contentType":"application/octet-stream"', b'"contentType":"text/csv"'
    )
    assert changed != parts.header
    hlen = struct.pack(">I", len(changed))
    parts.prelude = b"FLRS\x01" + hlen + changed + parts.prelude[9 + len(parts.header) :]
    with pytest.raises(NotARecipient):
        _open(parts.signed())


# -- wraps -----------------------------------------------------------------------------------
def _swap_wraps(blob: bytes) -> bytes:
    parts = Parts.of(blob)
    w = parts.wraps
    (count,) = struct.unpack(">H", w[:2])
    assert count == 2
    entries, pos = [], 2
    for _ in range(count):
        kid = w[pos + 1 : pos + 1 + w[pos]]
        pos += 1 + len(kid)
        (size,) = struct.unpack(">H", w[pos : pos + 2])
        entries.append((kid, w[pos + 2 : pos + 2 + size]))
        pos += 2 + size
    (kid_a, wrap_a), (kid_b, wrap_b) = entries
    swapped = struct.pack(">H", 2)
    for kid, wrap in ((kid_a, wrap_b), (kid_b, wrap_a)):
        swapped += bytes([len(kid)]) + kid + struct.pack(">H", len(wrap)) + wrap
    prefix_len = len(parts.prelude) - len(parts.wraps)
    parts.prelude = parts.prelude[:prefix_len] + swapped
    return parts.signed()


def test_a_wrap_swapped_between_two_recipients_opens_for_neither():
    swapped = _swap_wraps(TWO_RECIPIENTS)
    for who in (ALICE, BOB):
        with pytest.raises(NotARecipient):
            _open(swapped, identity=who, recipients=(ALICE, BOB))


def test_a_wraps_list_that_drops_a_recipient_of_the_header_is_refused():
    parts = Parts.of(TWO_RECIPIENTS)
    alone = Parts.of(_seal(recipients=(ALICE,)))
    prefix_len = len(parts.prelude) - len(parts.wraps)
    parts.prelude = (
        parts.prelude[: prefix_len - 4] + struct.pack(">I", len(alone.wraps)) + alone.wraps
    )
    with pytest.raises(TamperedResult, match="wraps do not match"):
        _open(parts.signed(), recipients=(ALICE, BOB))


def test_the_signature_covers_the_documented_hash_list_also_when_hashed_in_threads():
    many = _seal(payload=os.urandom(20 * CHUNK + 1))  # enough chunks for the thread pool
    assert Parts.of(many).signed() == many  # Ed25519 is deterministic


# -- streams ---------------------------------------------------------------------------------
class _SwappingReader(io.BytesIO):
    """Serves the good blob on the first pass and a changed one after the seek back."""

    def __init__(self, first: bytes, second: bytes) -> None:
        super().__init__(first)
        self._second = second

    def seek(self, pos: int, whence: int = 0) -> int:
        if self._second is not None and pos == 0 and self.tell() > 0:
            data, self._second = self._second, None
            super().__init__(data)
        return super().seek(pos, whence)


@pytest.mark.parametrize("where", [10, -200])
def test_a_blob_changed_between_the_two_stream_passes_is_refused(where):
    changed = bytearray(BLOB)
    changed[where] ^= 1
    plain = io.BytesIO()
    with pytest.raises(TamperedResult, match="changed on disk"):
        open_stream(
            _SwappingReader(BLOB, bytes(changed)),
            plain,
            identity=ALICE,
            trusted_nodes={"aggregator": NODE.public},
            expected=Expected("analysis-1", "f" * 64, "run-1", frozenset({ALICE.key_id})),
            guard=None,
        )


@settings(max_examples=200)
@given(
    position=st.integers(min_value=0, max_value=len(BLOB) - 1),
    mask=st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_change_is_refused_by_the_stream_opener_too(position, mask):
    tampered = bytearray(BLOB)
    tampered[position] ^= mask
    with pytest.raises(EnvelopeError):
        open_stream(
            io.BytesIO(bytes(tampered)),
            io.BytesIO(),
            identity=ALICE,
            trusted_nodes={"aggregator": NODE.public},
            expected=Expected("analysis-1", "f" * 64, "run-1", frozenset({ALICE.key_id})),
            guard=None,
        )
