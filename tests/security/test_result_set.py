"""A result set is signed as a whole: each header names the count; the set must be complete."""

from __future__ import annotations

import pytest

from flame_lab.errors import EnvelopeError, TamperedResult
from flame_lab.security import envelope
from flame_lab.security.keys import Identity, NodeIdentity

ALICE, NODE = Identity.generate(), NodeIdentity.generate()


def header(sequence: int, count: int) -> envelope.ResultHeader:
    blob = envelope.seal(
        b"{}",
        analysis_id="a",
        node_id="n",
        bundle_hash="h",
        run_nonce="r",
        sequence=sequence,
        count=count,
        content_type="application/json",
        recipients=[ALICE.public],
        node=NODE,
    )
    return envelope.peek_header(blob)


def test_the_count_is_in_the_signed_header():
    assert header(1, 3).count == 3
    assert header(0, 1).count == 1


def test_a_complete_set_in_any_order_is_accepted():
    envelope.check_result_set([header(2, 3), header(0, 3), header(1, 3)])


@pytest.mark.parametrize(
    ("set_", "words"),
    [
        ([(0, 3), (0, 3), (2, 3)], "missing 1; repeated 0"),
        ([(0, 3), (1, 3)], "missing 2"),
        ([(0, 2), (1, 3), (2, 3)], "disagree"),
        ([(0, 3), (1, 3), (2, 3), (2, 3)], "repeated 2"),
    ],
)
def test_a_dropped_repeated_or_mixed_result_is_refused(set_, words):
    with pytest.raises(TamperedResult, match=words):
        envelope.check_result_set([header(s, c) for s, c in set_])


def test_a_sequence_outside_its_count_cannot_be_sealed():
    with pytest.raises(EnvelopeError, match="count"):
        header(3, 3)
