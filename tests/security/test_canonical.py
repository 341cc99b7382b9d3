"""Canonical JSON gives one byte string per value, so signatures stay stable."""

from __future__ import annotations

import pytest

from flame_lab.errors import FlameLabError
from flame_lab.security.canonical import canonical_json
from flame_lab.security.keyid import display, key_id


def test_keys_are_sorted_and_whitespace_is_gone():
    assert canonical_json({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'


def test_non_ascii_text_is_utf8_not_escaped():
    assert canonical_json({"name": "Köln"}) == '{"name":"Köln"}'.encode()


def test_floats_are_refused_because_their_text_is_not_unique():
    with pytest.raises(FlameLabError, match="floats"):
        canonical_json({"x": 0.1})


def test_non_nfc_strings_are_refused():
    with pytest.raises(FlameLabError, match="NFC"):
        canonical_json({"path": "Ko\u0308ln.py"})


def test_non_string_keys_and_foreign_types_are_refused():
    with pytest.raises(FlameLabError):
        canonical_json({1: "x"})
    with pytest.raises(FlameLabError):
        canonical_json({"x": b"bytes"})


def test_key_ids_are_128_bit_hex_and_depend_on_every_key_and_its_order():
    a, b = b"\x01" * 32, b"\x02" * 32
    assert len(key_id(a, b)) == 32
    assert key_id(a, b) != key_id(b, a)
    assert key_id(a + b) != key_id(a, b)


def test_key_ids_display_in_groups_of_four():
    assert display("0123456789abcdef") == "0123 4567 89ab cdef"
