"""Text that came from the network, made safe to print in a terminal or show in a page.

An analysis writes log lines and failure reasons, a hub names analyses and nodes: any of them
may carry terminal escape sequences (set the title, write the clipboard, move the cursor,
rewrite earlier lines), other control characters, or Unicode bidi controls that make text
read differently from what it is. ``shown`` turns each of those into a visible escape such as
``\\x1b`` or ``\\u202e``, so that what is printed is exactly what was sent, and harmless.
"""

from __future__ import annotations

import re
from typing import Any

# Unicode bidi controls (embeddings, overrides, isolates, marks) and other invisible format
# characters that change how neighbouring text reads.
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE = "\u200b\u200c\u200d\u2028\u2029\ufeff"
# C0 controls except tab and newline, DEL, C1 controls (0x80-0x9f: CSI, OSC, ... in 8 bits).
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f"
_UNSAFE = re.compile(f"[{_CONTROL}{BIDI}{_INVISIBLE}]")
_UNSAFE_LINE = re.compile(f"[{_CONTROL}\t\n{BIDI}{_INVISIBLE}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char == "\n":
        return "\\n"
    if char == "\t":
        return "\\t"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: Any, *, multiline: bool = True) -> str:
    """``value`` as text with every control and bidi character made visible.

    ``multiline=False`` escapes newlines and tabs too, for one-line places (a table cell, a
    progress line), so a message cannot fake a further row.
    """
    text = value if isinstance(value, str) else str(value)
    # a lone surrogate cannot be printed or encoded: show it like the others
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return (_UNSAFE if multiline else _UNSAFE_LINE).sub(_escape, text)


def is_clean(text: str) -> bool:
    """True when ``text`` holds no control, bidi or invisible character (tab/newline aside)."""
    return _UNSAFE.search(text) is None
