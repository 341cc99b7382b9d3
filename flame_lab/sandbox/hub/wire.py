"""The Hub's wire format: errors as flat JSON bodies, ids, timestamps.

Kept apart from tornado so that the store and the lifecycle rules can raise ``ApiError``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class ApiError(Exception):
    """An answer other than success: becomes ``{statusCode, code, message, issues}``."""

    status: int
    message: str
    code: str = ""
    issues: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.code:
            self.code = _CODES.get(self.status, "error")

    def body(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "code": self.code,
            "message": self.message,
            "issues": self.issues,
        }


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_server_error",
}


def bad_field(name: str, why: str) -> ApiError:
    """A 400 naming the offending field, with a nudge when it looks snake_case."""
    hint = ""
    if "_" in name:
        camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)
        hint = f" (field names are camelCase: did you mean {camel!r}?)"
    return ApiError(
        400,
        f"{name!r}: {why}{hint}",
        code="invalid_field",
        issues=[{"path": [name], "message": why}],
    )


def now_iso(ts: float | None = None) -> str:
    """Hub timestamps: ISO 8601 in UTC with milliseconds and a Z."""
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_id() -> str:
    return str(uuid.uuid4())


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True
