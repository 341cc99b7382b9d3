"""Node statements (status, log lines) verify only as the node signed them."""

from __future__ import annotations

from flame_lab.security import statements
from flame_lab.security.keys import NodeIdentity

NODE, OTHER = NodeIdentity.generate(), NodeIdentity.generate()
SIGNER = statements.Signer(NODE, "node-1")


def opened_log(message, *, level="info", analysis="an-1", node="node-1", key=NODE.public):
    return statements.open_log(message, analysis_id=analysis, node_id=node, level=level, key=key)


def test_a_signed_line_verifies_and_shows_its_text_alone():
    said = opened_log(SIGNER.log("an-1", "info", "node-1: finished"))
    assert said.text == said.shown() == "node-1: finished" and said.verified is True
    assert said.stamp[0] == SIGNER.session


def test_altered_moved_or_foreign_lines_do_not_verify():
    line = SIGNER.log("an-1", "info", "mean 50.24")
    assert opened_log(line.replace("50.24", "60.24")).verified is False
    assert opened_log(line, level="error").verified is False
    assert opened_log(line, analysis="an-2").verified is False
    assert opened_log(line, node="node-2").verified is False
    assert opened_log(line, key=OTHER.public).verified is False
    assert opened_log("node-1: all good").shown() == "(unverified) node-1: all good"


def test_without_a_pinned_key_nothing_is_claimed_either_way():
    said = opened_log(SIGNER.log("an-1", "info", "x"), key=None)
    assert (said.text, said.verified, said.shown()) == ("x", None, "x")


def test_a_status_verifies_only_with_every_field_the_node_signed():
    comment = SIGNER.status("an-1", "approved", "failed", 40, "boom")

    def check(**kw):
        fields = {"approval": "approved", "execution": "failed", "progress": 40} | kw
        return statements.open_status(
            comment, analysis_id="an-1", node_id="node-1", key=NODE.public, **fields
        )

    assert check().verified is True and check().text == "boom"
    assert check(execution="executed").verified is False
    assert check(progress=100).verified is False
    assert check(approval=None).verified is False


def test_each_statement_has_its_own_number():
    first, second = SIGNER.log("an-1", "info", "a"), SIGNER.log("an-1", "info", "a")
    assert opened_log(first).stamp != opened_log(second).stamp
