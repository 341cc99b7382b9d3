"""Sealing and opening results: round trips, who may open them, what the opener checks."""

from __future__ import annotations

import base64
import io
import os
import struct
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization

from flame_lab.errors import EnvelopeError, NotARecipient, ReplayedResult, TamperedResult
from flame_lab.security import envelope
from flame_lab.security.envelope import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    Expected,
    OpenedResult,
    ResultHeader,
    chunk_count,
    chunk_nonce,
    chunk_spans,
    open_file,
    open_sealed,
    open_stream,
    peek_header,
    seal,
    seal_stream,
    sealed_size,
)
from flame_lab.security.keys import Identity, NodeIdentity
from flame_lab.security.replay import MemoryReplayGuard

KIB = 1 << 10
GIB = 1 << 30


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def bob() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def node() -> NodeIdentity:
    return NodeIdentity.generate()


@pytest.fixture(scope="module")
def other_node() -> NodeIdentity:
    return NodeIdentity.generate()


def sealed(payload: bytes, node: NodeIdentity, recipients, **overrides) -> bytes:
    args = dict(
        analysis_id="analysis-1",
        node_id="aggregator",
        bundle_hash="b" * 64,
        run_nonce="nonce-1",
        sequence=0,
        content_type="application/octet-stream",
        recipients=[r.public for r in recipients],
        node=node,
        chunk_size=KIB,
    )
    args.update(overrides)
    return seal(payload, **args)


def expect(*recipients: Identity, **overrides) -> Expected:
    args = dict(
        analysis_id="analysis-1",
        bundle_hash="b" * 64,
        run_nonce="nonce-1",
        recipient_ids=frozenset(r.key_id for r in recipients),
    )
    args.update(overrides)
    return Expected(**args)


def opened(blob: bytes, identity: Identity, node: NodeIdentity, **overrides) -> OpenedResult:
    args = dict(
        identity=identity,
        trusted_nodes={"aggregator": node.public},
        expected=expect(identity),
        guard=MemoryReplayGuard(),
    )
    args.update(overrides)
    return open_sealed(blob, **args)


# -- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, KIB - 1, KIB, KIB + 1, 5 * KIB + 17])
def test_a_sealed_payload_opens_to_the_same_bytes_at_every_chunk_boundary(size, alice, node):
    payload = os.urandom(size)
    result = opened(sealed(payload, node, [alice]), alice, node)
    assert result.payload == payload
    assert isinstance(result.payload, bytes)
    assert result.header.length == size
    assert result.header.chunk_count == chunk_count(size, KIB)


def test_the_default_chunk_size_is_one_mebibyte_and_recorded_in_the_header(alice, node):
    payload = os.urandom(DEFAULT_CHUNK_SIZE + 5)
    blob = sealed(payload, node, [alice], chunk_size=DEFAULT_CHUNK_SIZE)
    header = peek_header(blob)
    assert header.chunk_size == DEFAULT_CHUNK_SIZE == 1 << 20
    assert header.chunk_count == 2
    assert opened(blob, alice, node).payload == payload


@pytest.mark.parametrize("chunk_size", [MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1])
def test_chunk_sizes_outside_the_allowed_range_are_refused_when_sealing(chunk_size, alice, node):
    with pytest.raises(EnvelopeError, match="chunk size"):
        sealed(b"x", node, [alice], chunk_size=chunk_size)


def test_many_small_chunks_exercise_the_counter_and_open_in_order(alice, node):
    payload = os.urandom(300 * KIB + 1)
    result = opened(sealed(payload, node, [alice]), alice, node)
    assert result.payload == payload
    assert result.header.chunk_count == 301


def test_every_recipient_opens_the_same_result_with_their_own_key(alice, bob, node):
    payload = b"aggregated counts"
    blob = sealed(payload, node, [alice, bob])
    for who in (alice, bob):
        result = opened(blob, who, node, expected=expect(alice, bob))
        assert result.payload == payload
    assert peek_header(blob).recipient_ids == tuple(sorted([alice.key_id, bob.key_id]))


def test_the_header_records_what_the_node_said_it_sealed(alice, node):
    when = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
    blob = sealed(b"{}", node, [alice], sequence=7, content_type="application/json", now=when)
    header = opened(blob, alice, node).header
    assert header.analysis_id == "analysis-1"
    assert header.node_id == "aggregator"
    assert header.bundle_hash == "b" * 64
    assert header.run_nonce == "nonce-1"
    assert header.sequence == 7
    assert header.content_type == "application/json"
    assert header.created_at == when.replace(microsecond=0)
    assert header.version == 1


def test_peek_header_reads_the_header_without_keys(alice, node):
    blob = sealed(b"abc", node, [alice], sequence=3)
    header = peek_header(blob)
    assert (header.analysis_id, header.sequence, header.length) == ("analysis-1", 3, 3)
    assert "NOT verified" in (peek_header.__doc__ or "")


def test_sealing_twice_gives_different_blobs_with_fresh_nonces(alice, node):
    one, two = sealed(b"same", node, [alice]), sealed(b"same", node, [alice])
    assert one != two
    assert peek_header(one).nonce_prefix != peek_header(two).nonce_prefix


def test_stream_sealing_and_opening_match_the_in_memory_functions(alice, node, tmp_path):
    payload = os.urandom(7 * KIB + 3)
    out = io.BytesIO()
    header = seal_stream(
        io.BytesIO(payload),
        out,
        length=len(payload),
        analysis_id="analysis-1",
        node_id="aggregator",
        bundle_hash="b" * 64,
        run_nonce="nonce-1",
        sequence=0,
        content_type="application/octet-stream",
        recipients=[alice.public],
        node=node,
        chunk_size=KIB,
    )
    blob = out.getvalue()
    assert header == peek_header(blob)
    assert opened(blob, alice, node).payload == payload
    plain = io.BytesIO()
    result = open_stream(
        io.BytesIO(blob),
        plain,
        identity=alice,
        trusted_nodes={"aggregator": node.public},
        expected=expect(alice),
        guard=None,
    )
    assert plain.getvalue() == payload
    assert result.header == header


def test_seal_stream_refuses_a_reader_shorter_or_longer_than_the_length(alice, node):
    common = dict(
        analysis_id="a",
        node_id="aggregator",
        bundle_hash="h",
        run_nonce="n",
        sequence=0,
        content_type="x",
        recipients=[alice.public],
        node=node,
        chunk_size=KIB,
    )
    with pytest.raises(EnvelopeError, match="ended after 10 of 11"):
        seal_stream(io.BytesIO(b"0123456789"), io.BytesIO(), length=11, **common)
    with pytest.raises(EnvelopeError, match="longer"):
        seal_stream(io.BytesIO(b"0123456789"), io.BytesIO(), length=9, **common)


def test_open_file_writes_the_destination_only_when_everything_verified(alice, node, tmp_path):
    payload = os.urandom(3 * KIB)
    good = tmp_path / "good.flrs"
    good.write_bytes(sealed(payload, node, [alice]))
    target = tmp_path / "result.bin"
    args = dict(identity=alice, trusted_nodes={"aggregator": node.public}, guard=None)
    open_file(good, target, expected=expect(alice), **args)
    assert target.read_bytes() == payload

    bad = bytearray(good.read_bytes())
    bad[-100] ^= 1
    broken = tmp_path / "broken.flrs"
    broken.write_bytes(bad)
    missing = tmp_path / "never.bin"
    with pytest.raises(TamperedResult):
        open_file(broken, missing, expected=expect(alice), **args)
    assert not missing.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.flrs", "good.flrs", "result.bin"]


# -- who may open ----------------------------------------------------------------------------
def test_a_researcher_who_is_not_a_recipient_cannot_open_it(alice, bob, node):
    blob = sealed(b"secret", node, [alice])
    with pytest.raises(NotARecipient):
        opened(blob, bob, node, expected=expect(alice))


def test_a_non_recipient_expecting_itself_is_refused_as_well(alice, bob, node):
    blob = sealed(b"secret", node, [alice])
    with pytest.raises(NotARecipient):
        opened(blob, bob, node, expected=expect(alice))
    with pytest.raises(TamperedResult, match="other recipients"):
        opened(blob, bob, node, expected=expect(bob))


def test_a_node_key_the_researcher_does_not_trust_is_refused(alice, node, other_node):
    blob = sealed(b"x", other_node, [alice], node_id="rogue")
    with pytest.raises(TamperedResult, match="do not trust"):
        opened(blob, alice, node, trusted_nodes={"aggregator": node.public})


def test_a_valid_signature_by_another_node_claiming_a_trusted_id_is_refused(
    alice, node, other_node
):
    blob = sealed(b"x", other_node, [alice], node_id="aggregator")
    with pytest.raises(TamperedResult, match="signature does not verify"):
        opened(blob, alice, node, trusted_nodes={"aggregator": node.public})


def test_the_node_id_selects_which_trusted_key_must_have_signed(alice, node, other_node):
    blob = sealed(b"x", other_node, [alice], node_id="site-b")
    trusted = {"aggregator": node.public, "site-b": other_node.public}
    assert opened(blob, alice, node, trusted_nodes=trusted).header.node_id == "site-b"
    swapped = {"aggregator": other_node.public, "site-b": node.public}
    with pytest.raises(TamperedResult):
        opened(blob, alice, node, trusted_nodes=swapped)


# -- the header against the submission record ------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("analysis_id", "analysis-2", "analysis id"),
        ("bundle_hash", "c" * 64, "another bundle"),
        ("run_nonce", "nonce-2", "another run"),
    ],
)
def test_a_result_for_another_submission_is_refused(field, value, message, alice, node):
    blob = sealed(b"x", node, [alice], **{field: value})
    with pytest.raises(TamperedResult, match=message):
        opened(blob, alice, node)


def test_a_result_from_another_node_than_expected_is_refused(alice, node, other_node):
    blob = sealed(b"x", other_node, [alice], node_id="site-b")
    trusted = {"aggregator": node.public, "site-b": other_node.public}
    with pytest.raises(TamperedResult, match="node id"):
        opened(
            blob, alice, node, trusted_nodes=trusted, expected=expect(alice, node_id="aggregator")
        )


def test_a_result_with_another_sequence_than_expected_is_refused(alice, node):
    blob = sealed(b"x", node, [alice], sequence=2)
    with pytest.raises(TamperedResult, match="sequence"):
        opened(blob, alice, node, expected=expect(alice, sequence=1))
    assert opened(blob, alice, node, expected=expect(alice, sequence=2)).header.sequence == 2


def test_a_result_also_sealed_to_an_extra_recipient_is_refused(alice, bob, node):
    blob = sealed(b"x", node, [alice, bob])
    with pytest.raises(TamperedResult, match="other recipients"):
        opened(blob, alice, node, expected=expect(alice))


def test_a_result_sealed_to_fewer_recipients_than_submitted_is_refused(alice, bob, node):
    blob = sealed(b"x", node, [alice])
    with pytest.raises(TamperedResult, match="other recipients"):
        opened(blob, alice, node, expected=expect(alice, bob))


# -- replay ----------------------------------------------------------------------------------
def test_a_different_blob_for_an_opened_triple_is_a_replay(alice, node):
    guard = MemoryReplayGuard()
    first = sealed(b"first", node, [alice], sequence=4)
    second = sealed(b"second", node, [alice], sequence=4)
    assert opened(first, alice, node, guard=guard).payload == b"first"
    with pytest.raises(ReplayedResult):
        opened(second, alice, node, guard=guard)


def test_a_replay_is_refused_before_the_content_key_is_unwrapped(alice, node, monkeypatch):
    guard = MemoryReplayGuard()
    opened(sealed(b"first", node, [alice], sequence=5), alice, node, guard=guard)
    replay = sealed(b"second", node, [alice], sequence=5)

    class NoUnwrap:
        def decrypt(self, *args, **kwargs):
            raise AssertionError("unwrapped a replayed result")

    monkeypatch.setattr(envelope, "_SUITE", NoUnwrap())
    with pytest.raises(ReplayedResult):
        opened(replay, alice, node, guard=guard)


def test_the_identical_blob_may_be_opened_again(alice, node):
    guard = MemoryReplayGuard()
    blob = sealed(b"same", node, [alice])
    one = opened(blob, alice, node, guard=guard)
    two = opened(blob, alice, node, guard=guard)
    assert one.payload == two.payload == b"same"
    assert one.digest == two.digest


def test_another_sequence_from_the_same_node_is_not_a_replay(alice, node):
    guard = MemoryReplayGuard()
    for seq in (0, 1, 2):
        blob = sealed(b"round %d" % seq, node, [alice], sequence=seq)
        assert opened(blob, alice, node, guard=guard).payload == b"round %d" % seq
    assert len(guard) == 3


def test_a_blob_that_fails_to_open_is_not_recorded_by_the_guard(alice, bob, node):
    guard = MemoryReplayGuard()
    with pytest.raises(NotARecipient):
        opened(sealed(b"x", node, [alice]), bob, node, expected=expect(alice), guard=guard)
    assert len(guard) == 0


# -- the format ------------------------------------------------------------------------------
def test_an_unknown_container_version_is_refused_with_an_upgrade_hint(alice, node):
    blob = bytearray(sealed(b"x", node, [alice]))
    blob[4] = 2
    with pytest.raises(EnvelopeError, match="container version 2") as info:
        opened(bytes(blob), alice, node)
    assert "Upgrade" in info.value.hint


def test_the_container_layout_is_the_documented_one(alice, node):
    payload = os.urandom(2 * KIB + 1)
    blob = sealed(payload, node, [alice])
    assert blob[:5] == b"FLRS\x01"
    (header_len,) = struct.unpack(">I", blob[5:9])
    header_bytes = blob[9 : 9 + header_len]
    header = ResultHeader.from_bytes(header_bytes)
    assert header.to_bytes() == header_bytes
    (wraps_len,) = struct.unpack(">I", blob[9 + header_len : 13 + header_len])
    wraps = blob[13 + header_len : 13 + header_len + wraps_len]
    assert struct.unpack(">H", wraps[:2]) == (1,)
    assert wraps[2] == 32 and wraps[3:35].decode() == alice.key_id
    assert struct.unpack(">H", wraps[35:37]) == (80,)  # X25519 enc (32) + key (32) + tag (16)
    body = len(blob) - (13 + header_len + wraps_len) - 64
    assert body == len(payload) + 3 * 16
    assert len(blob) == sealed_size(header_len, wraps_len, len(payload), KIB)


def test_the_header_is_canonical_json_with_camel_case_fields(alice, node):
    header = peek_header(sealed(b"x", node, [alice]))
    data = header.to_json()
    assert sorted(data) == sorted(
        [
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
        ]
    )
    assert len(base64.urlsafe_b64decode(data["noncePrefix"] + "==")) == 7


def test_the_nonce_is_prefix_counter_and_last_flag():
    prefix = bytes(range(7))
    assert chunk_nonce(prefix, 0, False) == prefix + b"\x00\x00\x00\x00\x00"
    assert chunk_nonce(prefix, 1, True) == prefix + b"\x00\x00\x00\x01\x01"
    assert chunk_nonce(prefix, 2**31, False) == prefix + b"\x80\x00\x00\x00\x00"
    assert chunk_nonce(prefix, 2**32 - 1, True) == prefix + b"\xff\xff\xff\xff\x01"
    assert len({chunk_nonce(prefix, i, last) for i in range(4) for last in (True, False)}) == 8


def test_payloads_above_two_gibibytes_fit_the_counter_and_length_fields():
    length = 3 * GIB + 5
    spans = list(chunk_spans(length, MAX_CHUNK_SIZE))
    assert len(spans) == chunk_count(length, MAX_CHUNK_SIZE) == 769
    assert spans[-1] == (768, 768 * MAX_CHUNK_SIZE, length)
    assert all(end - start == MAX_CHUNK_SIZE for _, start, end in spans[:-1])
    assert sealed_size(100, 40, length, MAX_CHUNK_SIZE) == 9 + 100 + 4 + 40 + length + 769 * 16 + 64
    header = ResultHeader(
        analysis_id="a",
        node_id="n",
        bundle_hash="h",
        run_nonce="r",
        sequence=0,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        content_type="application/x-npy",
        recipient_ids=("0" * 32,),
        chunk_size=MIN_CHUNK_SIZE,
        length=length,
        nonce_prefix=b"\x00" * 7,
    )
    header.validate()
    assert ResultHeader.from_bytes(header.to_bytes()) == header
    assert header.chunk_count == 3 * 2**20 + 1  # > 2**31 bytes / 1 KiB chunks: far below 2**32


def test_a_length_needing_more_than_two_to_the_32_chunks_is_refused():
    header = ResultHeader(
        analysis_id="a",
        node_id="n",
        bundle_hash="h",
        run_nonce="r",
        sequence=0,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        content_type="x",
        recipient_ids=("0" * 32,),
        chunk_size=MIN_CHUNK_SIZE,
        length=MIN_CHUNK_SIZE * 2**32 + 1,
        nonce_prefix=b"\x00" * 7,
    )
    with pytest.raises(EnvelopeError, match="2\\*\\*32 chunks"):
        header.validate()


def test_sealing_needs_a_recipient(node):
    with pytest.raises(EnvelopeError, match="at least one recipient"):
        sealed(b"x", node, [])


# -- secrets ---------------------------------------------------------------------------------
def _renderings(secret: bytes) -> list[str]:
    return [
        secret.hex(),
        secret.hex().upper(),
        repr(secret)[2:-1],
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    ]


def test_no_content_key_or_private_key_appears_in_any_repr_str_or_error(
    alice, bob, node, monkeypatch
):
    keys: list[bytes] = []
    real = envelope._new_content_key

    def capture() -> bytes:
        keys.append(real())
        return keys[-1]

    monkeypatch.setattr(envelope, "_new_content_key", capture)
    blob = sealed(b"payload", node, [alice])
    result = opened(blob, alice, node)
    texts = [repr(result), str(result), repr(result.header), str(result.header)]
    texts += [repr(alice), str(alice), repr(node), str(node)]
    failures: list[BaseException] = []
    for attempt in (
        lambda: opened(blob, bob, node, expected=expect(alice)),
        lambda: opened(blob[:-1] + bytes([blob[-1] ^ 1]), alice, node),
        lambda: opened(blob, alice, node, expected=expect(alice, run_nonce="other")),
    ):
        with pytest.raises(EnvelopeError) as info:
            attempt()
        failures.append(info.value)
    for exc in failures:
        texts += [str(exc), repr(exc), str(exc.to_dict())]
    raw = serialization.Encoding.Raw
    private = serialization.PrivateFormat.Raw
    none = serialization.NoEncryption()
    secrets = [
        keys[0],
        alice.encryption_key.private_bytes(raw, private, none),
        alice.signing_key.private_bytes(raw, private, none),
        node.signing_key.private_bytes(raw, private, none),
    ]
    assert len(keys[0]) == 32
    joined = "\n".join(texts)
    for secret in secrets:
        for form in _renderings(secret):
            assert form not in joined
