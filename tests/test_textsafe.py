"""Text from the network is printed with its control and bidi characters visible, not obeyed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flame_lab.textsafe import BIDI, is_clean, shown


def test_escape_sequences_become_visible_text():
    assert shown("a\x1b]52;c;aGk=\x07b") == "a\\x1b]52;c;aGk=\\x07b"  # clipboard write
    assert shown("\x9b2J\x7f\x00") == "\\x9b2J\\x7f\\x00"  # C1 CSI, DEL, NUL
    assert shown("x\u202ey\u2066z") == "x\\u202ey\\u2066z"
    assert shown("tab\tand\nnewline") == "tab\tand\nnewline"
    assert shown("tab\tand\nnewline", multiline=False) == "tab\\tand\\nnewline"
    assert shown("lone \ud800") == "lone \\ud800"
    assert shown("Grüße, 東京 ✓") == "Grüße, 東京 ✓"


@given(st.text())
def test_nothing_unsafe_survives(text):
    out = shown(text, multiline=False)
    assert is_clean(out) and "\n" not in out and "\t" not in out
    assert not any(ch in out for ch in BIDI)
    assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in out)
    out.encode("utf-8")
