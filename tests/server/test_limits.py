"""The REST API's input bounds, played as a hostile page would send them: each is a 400/413
naming the problem, never a 500 or a crash of the Jupyter server."""

from __future__ import annotations

import json

import pytest

from flame_lab.errors import BadRequest
from flame_lab.jsonscan import nesting_depth
from flame_lab.server import limits


def test_nesting_is_measured_outside_strings():
    assert nesting_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}', 64) == 3
    assert nesting_depth(b'{"a": "\\"[[["}', 64) == 1
    assert nesting_depth(b"[" * 100_000 + b"]" * 100_000, 64) == 65  # stops early


def test_deep_json_is_refused_before_parsing():
    with pytest.raises(BadRequest, match="nested deeper than 64"):
        limits.parse_body(b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")


def test_an_oversized_body_is_a_413_error():
    with pytest.raises(limits.RequestTooLarge, match="bytes; at most"):
        limits.parse_body(b" " * (limits.MAX_BODY_BYTES + 1))


@pytest.mark.parametrize(
    "value",
    ["evil\u202etxt.py", "a\x1b]0;owned\x07", "nul\x00", "line\nbreak", "tab\there"],
)
def test_names_with_control_or_bidi_characters_are_refused(value):
    with pytest.raises(BadRequest, match="control or bidi"):
        limits.text_field(value, "name", 200, name=True)


def test_a_lone_surrogate_is_refused():
    with pytest.raises(BadRequest, match="lone surrogate"):
        limits.text_field("a\ud800b", "name", 200, name=True)


def test_lengths_and_counts_are_bounded():
    with pytest.raises(BadRequest, match="at most 200"):
        limits.text_field("x" * 201, "name", 200)
    with pytest.raises(BadRequest, match="at most 512"):
        limits.name_list(["n"] * 513, "nodes")
    assert limits.name_list(["uk-aachen"], "nodes") == ["uk-aachen"]
    assert limits.text_field("mean age (v2)", "name", 200, name=True) == "mean age (v2)"


# -- through the real Jupyter server ---------------------------------------------------------
async def _post(api, raw: bytes):
    response = await api.fetch(
        "flame-lab", "api", "analyses", method="POST", body=raw, raise_error=False
    )
    return response.code, json.loads(response.body)


async def test_deeply_nested_json_is_400_not_500(api):
    code, body = await _post(api, b'{"notebook": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert code == 400 and "nested deeper" in body["message"], body


async def test_invalid_utf8_is_400(api):
    code, body = await _post(api, b'{"name": "\xff\xfe"}')
    assert code == 400 and body["error"] == "BadRequest", body


async def test_a_body_over_the_limit_is_413(api, monkeypatch):
    monkeypatch.setattr(limits, "MAX_BODY_BYTES", 1000)
    code, body = await _post(api, json.dumps({"name": "x" * 2000}).encode())
    assert code == 413 and body["error"] == "RequestTooLarge" and body["hint"], body


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("name", "x" * 5000, "at most 200"),
        ("name", "report\u202eexe", "control or bidi"),
        ("nodes", ["uk-aachen\x1b[2J"], "control or bidi"),
        ("nodes", ["n"] * 600, "at most 512"),
        ("passphrase", "p" * 10_000, "at most 4096"),
    ],
)
async def test_submission_fields_are_bounded(api, field, value, words):
    code, body = await _post(api, json.dumps({"notebook": {"cells": []}, field: value}).encode())
    assert code == 400 and words in body["message"], body


async def test_a_long_or_unclean_log_query_is_400(api):
    for node in ("n" * 300, "a\u202eb"):
        response = await api.fetch(
            "flame-lab", "api", "analyses", "a1", "logs", params={"node": node}, raise_error=False
        )
        assert response.code == 400, response.body
