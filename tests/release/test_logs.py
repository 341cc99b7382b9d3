"""Analysis log lines: capped per run, sealed to the researcher, public failures without values."""

from __future__ import annotations

import pytest

from flame_lab.errors import FlameLabError
from flame_lab.release.logs import (
    LogGate,
    SealContext,
    is_sealed,
    open_line,
    public_failure,
    seal_line,
)
from flame_lab.security import envelope
from flame_lab.security.keys import Identity, NodeIdentity


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_caps_lines_per_run_and_per_second_and_counts_what_it_dropped():
    clock = Clock()
    gate = LogGate(lines=5, per_second=3, clock=clock)
    assert [gate.admit(f"l{i}") for i in range(4)] == [True, True, True, False]
    clock.now += 1
    assert [gate.admit(f"m{i}") for i in range(4)] == [True, True, False, False]
    assert gate.kept == 5 and gate.dropped == 3
    assert "dropped 3 analysis log line(s)" in gate.summary()
    assert LogGate(lines=5, per_second=3, clock=clock).summary() is None


@pytest.fixture
def sealed():
    researcher, node = Identity.generate(), NodeIdentity.generate()
    context = SealContext("an-1", "node-1", "b" * 64, "nonce-1", [researcher.public], node)
    expected = envelope.Expected(
        analysis_id="an-1",
        bundle_hash="b" * 64,
        run_nonce="nonce-1",
        recipient_ids=frozenset({researcher.public.key_id}),
        node_id="node-1",
    )
    return researcher, node, context, expected


def test_a_sealed_line_hides_its_text_and_opens_only_for_the_researcher(sealed):
    researcher, node, context, expected = sealed
    text = "patient 17: age 54, HbA1c 7.9"
    stored = seal_line(context, 1, "info", text)
    assert is_sealed(stored) and "54" not in stored and "patient" not in stored
    opened = open_line(
        stored, identity=researcher, trusted_nodes={"node-1": node.public}, expected=expected
    )
    assert opened == ("info", text)
    with pytest.raises(FlameLabError):
        open_line(
            stored,
            identity=Identity.generate(),
            trusted_nodes={"node-1": node.public},
            expected=expected,
        )


def test_a_line_signed_by_another_node_or_tampered_does_not_open(sealed):
    researcher, node, context, expected = sealed
    stored = seal_line(context, 1, "info", "hello")
    other = NodeIdentity.generate()
    with pytest.raises(FlameLabError):
        open_line(
            stored, identity=researcher, trusted_nodes={"node-1": other.public}, expected=expected
        )
    flipped = stored[:-8] + ("A" if stored[-8] != "A" else "B") + stored[-7:]
    with pytest.raises(FlameLabError):
        open_line(
            flipped, identity=researcher, trusted_nodes={"node-1": node.public}, expected=expected
        )


def test_a_sealed_result_cannot_pass_as_a_log_line(sealed):
    researcher, node, _, expected = sealed
    blob = envelope.seal(
        b'{"level": "info", "text": "x"}',
        analysis_id="an-1",
        node_id="node-1",
        bundle_hash="b" * 64,
        run_nonce="nonce-1",
        sequence=0,
        content_type="application/json",
        recipients=[researcher.public],
        node=node,
    )
    import base64

    stored = "flame-lab-sealed-log:1:" + base64.b64encode(blob).decode()
    with pytest.raises(FlameLabError, match="other than a log line"):
        open_line(
            stored, identity=researcher, trusted_nodes={"node-1": node.public}, expected=expected
        )


def test_a_public_failure_names_type_file_and_line_never_the_message():
    failure = (
        "Traceback (most recent call last):\n"
        '  File "/srv/node/runs/an-1/code/analysis.py", line 12, in analysis_method\n'
        "    raise ValueError(rows)\n"
        "ValueError: [54, 61, 33, 70]"
    )
    text = public_failure(failure)
    assert text.startswith("ValueError at analysis.py, line 12")
    assert "54" not in text and "rows" not in text
    refused = "PolicyRefused: node a refused to release a message: result (rule text)\nTrace"
    assert public_failure(refused) == refused.splitlines()[0]
    assert "secret" not in public_failure("KeyError: 'secret'")
