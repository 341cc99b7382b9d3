"""What the REST API accepts, checked before anything is parsed or stored.

A body larger than ``MAX_BODY_BYTES`` is a 413; JSON nested deeper than ``MAX_DEPTH`` is a 400
found by a linear scan before ``json.loads`` (whose recursion a deeply nested body would
exhaust); text fields have maximum lengths and names may not hold control or bidi characters.
"""

from __future__ import annotations

import json
from typing import Any

from flame_lab.errors import BadRequest
from flame_lab.jsonscan import nesting_depth
from flame_lab.textsafe import is_clean

MAX_BODY_BYTES = 16 * 1024 * 1024  # a notebook with its outputs
MAX_DEPTH = 64  # nbformat needs about 10
MAX_NAME_CHARS = 200
MAX_NODE_CHARS = 128
MAX_NODES = 512
MAX_PASSPHRASE_CHARS = 4096
MAX_QUERY_CHARS = 256


class RequestTooLarge(BadRequest):
    """The request body is larger than the API takes (HTTP 413)."""

    default_hint = "Send a smaller notebook: clear large cell outputs first."


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request's JSON object, within the size and nesting limits."""
    if not raw:
        return {}
    if len(raw) > MAX_BODY_BYTES:
        raise RequestTooLarge(
            f"the request body has {len(raw)} bytes; at most {MAX_BODY_BYTES} are accepted"
        )
    if nesting_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise BadRequest(f"the request body's JSON is nested deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the request body is not JSON (UTF-8)") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def text_field(value: Any, field: str, limit: int, *, name: bool = False) -> str | None:
    """A string field within ``limit`` characters (a name: also no control or bidi characters)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"`{field}` must be a string")
    if len(value) > limit:
        raise BadRequest(f"`{field}` has {len(value)} characters; at most {limit} are accepted")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"`{field}` is not valid Unicode (a lone surrogate)") from None
    if name and not is_clean(value.replace("\t", "\x00").replace("\n", "\x00")):
        raise BadRequest(f"`{field}` holds control or bidi characters; use plain text")
    return value


def name_list(value: Any, field: str) -> list[str] | None:
    """A list of node names, each a clean short name."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRequest(f"`{field}` must be a list of node names")
    if len(value) > MAX_NODES:
        raise BadRequest(f"`{field}` names {len(value)} nodes; at most {MAX_NODES} are accepted")
    return [text_field(item, field, MAX_NODE_CHARS, name=True) or "" for item in value]
