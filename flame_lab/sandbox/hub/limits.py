"""What the sandbox hub accepts at most, checked before anything is stored: body sizes, JSON
nesting, text lengths and characters, number ranges. Each refusal is a 400 or 413 that names the
problem, never a 500 from deep inside the JSON parser, SQLite or the encoder."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from flame_lab.sandbox.hub.wire import ApiError, bad_field, is_uuid

if TYPE_CHECKING:
    from flame_lab.sandbox.hub.resources import Spec

MAX_JSON_BYTES = 1024 * 1024  # a JSON body of any route but the messenger's and uploads
MAX_TOKEN_BYTES = 64 * 1024  # POST /auth/token and the login form
MAX_JSON_DEPTH = 32  # the Hub's bodies nest 3 deep at most
MAX_NAME = 256  # names, display names, paths, types
MAX_TEXT = 8192  # descriptions, comments, public keys
MAX_LOG_MESSAGE = 64 * 1024
MAX_QUERY_VALUE = 1024
MAX_ARGUMENTS = 64
MAX_OFFSET = 10**9
INT64 = (-(2**63), 2**63 - 1)

# C0 and C1 controls, DEL, and lone surrogates (not Unicode text at all); free text may keep
# tab and line breaks.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Bidirectional controls can make one name display as another (U+202E reverses what follows).
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str, stop: int = MAX_JSON_DEPTH) -> int:
    """How deep arrays and objects nest in ``text`` (strings skipped); stops counting past
    ``stop`` so a hostile body costs one pass at most."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop:
                    break
        else:
            depth -= 1
    return deepest


def parse_json(raw: bytes, limit: int = MAX_JSON_BYTES) -> Any:
    """A request's JSON body: size, encoding, nesting and syntax checked, each with a 4xx."""
    if len(raw) > limit:
        raise too_large(limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, f"the request body is not valid UTF-8 (at byte {exc.start})", code="invalid_body"
        ) from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ApiError(
            400,
            f"the request body nests deeper than {MAX_JSON_DEPTH} levels",
            code="invalid_body",
        )
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "the request body is not valid JSON", code="invalid_body") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body exceeds this route's limit of {limit} bytes",
        code="payload_too_large",
    )


def check_text(field: str, value: str, *, max_len: int, name: bool) -> str:
    """A text field: at most ``max_len`` characters; no control characters (free text keeps
    tab and line breaks); names also no bidirectional controls."""
    if len(value) > max_len:
        raise bad_field(field, f"is {len(value)} characters long; at most {max_len} are accepted")
    found = (_CONTROL if name else _CONTROL_TEXT).search(value)
    if found is not None:
        code = ord(found.group())
        what = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "the control character"
        raise bad_field(field, f"holds {what} U+{code:04X}; remove it")
    if name and (found := _BIDI.search(value)) is not None:
        raise bad_field(
            field,
            f"holds the bidirectional control U+{ord(found.group()):04X}, which can make a "
            "name display as another; remove it",
        )
    return value


def check_int(field: str, value: int, low: int = INT64[0], high: int = INT64[1]) -> int:
    if not low <= value <= high:
        raise bad_field(field, f"must be between {low} and {high}")
    return value


def _check(name: str, spec: Spec, value: Any) -> Any:
    if value is None:
        if not spec.nullable:
            raise bad_field(name, "must not be null")
        return None
    if spec.kind == "uuid":
        if not isinstance(value, str) or not is_uuid(value):
            raise bad_field(name, "must be a UUID")
        return str(uuid.UUID(value))
    if spec.kind == "str":
        if not isinstance(value, str):
            raise bad_field(name, "must be a string")
        if spec.choices and value not in spec.choices:
            raise bad_field(name, "must be one of " + ", ".join(spec.choices))
        return check_text(name, value, max_len=spec.max_len, name=spec.is_name)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise bad_field(name, "must be true or false")
        return value
    if spec.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad_field(name, "must be an integer")
        return check_int(name, value, spec.low, spec.high)
    if spec.kind == "args":
        ok = isinstance(value, list) and all(
            isinstance(a, dict)
            and isinstance(a.get("value"), str)
            and a.get("position") in (None, "before", "after")
            and set(a) <= {"value", "position"}
            for a in value
        )
        if not ok:
            raise bad_field(name, "must be a list of {value, position: before|after|null}")
        if len(value) > MAX_ARGUMENTS:
            raise bad_field(name, f"holds {len(value)} arguments; at most {MAX_ARGUMENTS}")
        for index, a in enumerate(value):
            check_text(f"{name}[{index}].value", a["value"], max_len=MAX_TEXT, name=False)
        return [{"value": a["value"], "position": a.get("position")} for a in value]
    raise AssertionError(f"unknown spec kind {spec.kind}")


def validate_body(body: Any, specs: dict[str, Spec]) -> dict[str, Any]:
    """Accept exactly the fields the real Hub reads; unknown or snake_case names are a 400."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
    for name in body:
        if name not in specs:
            raise bad_field(name, "is not a field this route accepts")
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in body:
            if spec.required:
                raise bad_field(name, "is required")
            continue
        out[name] = _check(name, spec, body[name])
    return out
