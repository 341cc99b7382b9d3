"""Canonical JSON: one byte string per value, so that signatures and hashes are stable."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from flame_lab.errors import FlameLabError


def _check(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return
    if isinstance(value, float):
        raise FlameLabError(f"canonical JSON forbids floats (at {where})", hint="Use integers.")
    if isinstance(value, str):
        if unicodedata.normalize("NFC", value) != value:
            raise FlameLabError(f"canonical JSON requires NFC strings (at {where})")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FlameLabError(f"canonical JSON keys must be strings (at {where})")
            _check(key, f"{where}.{key}")
            _check(item, f"{where}.{key}")
        return
    raise FlameLabError(f"canonical JSON cannot hold {type(value).__name__} (at {where})")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no floats, NFC strings."""
    _check(value, "$")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
