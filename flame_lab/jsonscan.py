"""How deep a JSON text nests, found by one linear scan before anything parses it.

``json.loads`` recurses once per level: a body of 100 000 ``[`` exhausts the interpreter's
stack. Whoever takes JSON from the network measures it here first and refuses the deep ones.
"""

from __future__ import annotations


def nesting_depth(raw: bytes, limit: int) -> int:
    """The bracket depth of a JSON text, outside strings; stops counting past ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest
