"""A node's policy file: approval, release profile, disclosure and DP rules, resource limits.

Read by the sandbox nodes and by the researcher's local test alike; what the rules *do* to a
release lives in :mod:`flame_lab.release`. Pure Python: no Jupyter, no network.

The node policy file (``policy.toml``, or ``policy.json`` with the same nesting)::

    approval = "manual"              # "auto" | "manual": who approves an incoming analysis
    profile = "flame"                # "flame": as a real FLAME node | "strict": checks releases
    node_sealing = true              # false: store the result as written (a real FLAME node)
    image_environments = false       # true: run with only the master image's packages

    [disclosure]                     # what a strict node checks (a flame node alters nothing)
    min_records = 5                  # fewest records a node may release anything about
    min_count = 5                    # integral numbers 1..min_count-1 are refused as small counts
    suppress_small_counts = true     # false: the small-count rules are off
    refuse_row_level = true          # refuse collections as long as the record count, or longer
    max_release_bytes = 25165824     # 24 MiB; must fit one call (limits.max_frame_bytes)
    allow_opaque_bytes = false       # raw bytes cannot be inspected, so they are refused

    [release]                        # how the node treats what leaves it (see flame_lab.release)
    max_label_chars = 40             # strict: longer strings and dict keys are refused
    max_values_ratio = 0.5           # strict: numbers one run may release, per record, in total
    progress_step = 10               # strict: progress is reported in steps of this size
    analysis_logs = "sealed"         # "sealed" to the researcher | "node": kept for the admin
    log_lines = 1000                 # per run; lines beyond the caps are dropped and counted
    log_lines_per_second = 200

    [privacy]
    epsilon_per_researcher = 10.0    # total DP epsilon each researcher (key id) may spend here
    require_dp = false               # true: only StarLocalDPModel releases leave this node
    max_epsilon_per_release = 1.0    # a larger request is served with this epsilon (more noise)
    min_sensitivity = 1.0            # the node never adds less noise than this sensitivity needs
    # clip_lower = 0.0, clip_upper = 120.0: released numbers are clamped before noise

    [limits]                         # the run as a whole: see flame_lab.limits
    cpu_seconds = 600
    memory_mib = 2048
    wall_seconds = 1800

Unknown keys are errors, never ignored: a misspelt ``min_record`` must not weaken a policy.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flame_lab.errors import PolicyFileError
from flame_lab.limits import (
    DEFAULT_RELEASE_BYTES,
    MIB,
    ResourceLimits,
    frame_bytes_for,
    release_bytes_carried,
)
from flame_lab.limits import LIMIT_TYPES as _LIMIT_TYPES

APPROVAL_MODES = ("auto", "manual")
PROFILES = ("flame", "strict")
ANALYSIS_LOGS = ("sealed", "node")
MAX_DEPTH = 64
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- policies ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DisclosurePolicy:
    """The statistical disclosure rules a node applies to every result before it leaves."""

    min_records: int = 5
    min_count: int | None = None
    suppress_small_counts: bool = True
    refuse_row_level: bool = True
    max_release_bytes: int = DEFAULT_RELEASE_BYTES  # 0: only limits.max_frame_bytes bounds it
    allow_opaque_bytes: bool = False

    def __post_init__(self) -> None:
        _check_table(asdict(self), _DISCLOSURE_TYPES, "disclosure")

    @property
    def count_threshold(self) -> int:
        """Integral numbers from 1 up to (not including) this one are possible small counts."""
        return self.min_count if self.min_count is not None else self.min_records


@dataclass(frozen=True)
class ReleaseRules:
    """How a node treats what leaves it beyond the disclosure rules: strict limits, log caps."""

    max_label_chars: int = 40
    max_values_ratio: float = 0.5
    progress_step: int = 10
    analysis_logs: str = "sealed"
    log_lines: int = 1000
    log_lines_per_second: int = 200

    def __post_init__(self) -> None:
        if self.analysis_logs not in ANALYSIS_LOGS:
            raise PolicyFileError(
                f"release.analysis_logs must be one of {', '.join(ANALYSIS_LOGS)}, "
                f"not {self.analysis_logs!r}"
            )
        _check_table(
            {k: v for k, v in asdict(self).items() if k != "analysis_logs"},
            _RELEASE_TYPES,
            "release",
        )


@dataclass(frozen=True)
class DPRules:
    """The node's own differential-privacy parameters: the analysis cannot lower the noise."""

    require_dp: bool = False
    max_epsilon_per_release: float = 1.0
    min_sensitivity: float = 1.0
    clip_lower: float | None = None
    clip_upper: float | None = None

    def __post_init__(self) -> None:
        _check_number("privacy.require_dp", self.require_dp, bool)
        _check_number("privacy.max_epsilon_per_release", self.max_epsilon_per_release, float)
        _check_number("privacy.min_sensitivity", self.min_sensitivity, float)
        bounds = (self.clip_lower, self.clip_upper)
        if (bounds[0] is None) != (bounds[1] is None):
            raise PolicyFileError("privacy.clip_lower and privacy.clip_upper go together")
        for name, value in zip(("clip_lower", "clip_upper"), bounds, strict=True):
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise PolicyFileError(f"privacy.{name} must be a finite number, not {value!r}")
        if bounds[0] is not None and not bounds[0] < bounds[1]:  # type: ignore[operator]
            raise PolicyFileError("privacy.clip_lower must be below privacy.clip_upper")


@dataclass(frozen=True)
class NodePolicy:
    """Everything a node's data steward decides: approval, disclosure, DP budget, limits.

    Approval defaults to ``manual``: a hospital node runs nothing nobody looked at. The sandbox
    writes ``approval = "auto"`` into its own nodes' policy files where it wants speed.
    """

    approval: str = "manual"
    disclosure: DisclosurePolicy = field(default_factory=DisclosurePolicy)
    epsilon_per_researcher: float = 10.0
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    profile: str = "flame"
    release: ReleaseRules = field(default_factory=ReleaseRules)
    dp: DPRules = field(default_factory=DPRules)
    # false: store the aggregator's result as the analysis wrote it, as a real FLAME node does
    node_sealing: bool = True
    # true: run each analysis with only its master image's packages (flame_lab.images)
    image_environments: bool = False

    def __post_init__(self) -> None:
        if self.approval not in APPROVAL_MODES:
            raise PolicyFileError(
                f"approval must be one of {', '.join(APPROVAL_MODES)}, not {self.approval!r}",
                hint='Write approval = "auto" or approval = "manual".',
            )
        if self.profile not in PROFILES:
            raise PolicyFileError(
                f"profile must be one of {', '.join(PROFILES)}, not {self.profile!r}",
                hint='Write profile = "flame" (as a real FLAME node) or profile = "strict".',
            )
        for name in _SWITCHES:
            _check_number(name, getattr(self, name), bool)
        _check_number("privacy.epsilon_per_researcher", self.epsilon_per_researcher, float)
        _check_release_fits_a_call(self.disclosure.max_release_bytes, self.limits.max_frame_bytes)

    def to_dict(self) -> dict[str, Any]:
        """The nested shape of the policy file; unset optional values are left out."""
        disclosure = {k: v for k, v in asdict(self.disclosure).items() if v is not None}
        dp = {k: v for k, v in asdict(self.dp).items() if v is not None}
        return {
            "approval": self.approval,
            "profile": self.profile,
            **{name: getattr(self, name) for name in _SWITCHES},
            "disclosure": disclosure,
            "release": asdict(self.release),
            "privacy": {"epsilon_per_researcher": float(self.epsilon_per_researcher), **dp},
            "limits": asdict(self.limits),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "policy") -> NodePolicy:
        """Build from the nested shape, refusing unknown keys and wrong types."""
        if not isinstance(data, Mapping):
            raise PolicyFileError(f"{source}: the policy must be a table of settings")
        _refuse_unknown(
            data,
            ("approval", "profile", *_SWITCHES, "disclosure", "release", "privacy", "limits"),
            source,
        )
        tables = {}
        for section in ("disclosure", "release", "privacy", "limits"):
            table = data.get(section, {})
            if not isinstance(table, Mapping):
                raise PolicyFileError(f"{source}: [{section}] must be a table")
            tables[section] = table
        _refuse_unknown(tables["disclosure"], tuple(_DISCLOSURE_TYPES), f"{source} [disclosure]")
        _refuse_unknown(
            tables["privacy"], ("epsilon_per_researcher", *_DP_KEYS), f"{source} [privacy]"
        )
        _refuse_unknown(tables["release"], _RELEASE_KEYS, f"{source} [release]")
        _refuse_unknown(tables["limits"], tuple(_LIMIT_TYPES), f"{source} [limits]")
        privacy = dict(tables["privacy"])
        dp = {k: privacy.pop(k) for k in _DP_KEYS if k in privacy}
        kwargs: dict[str, Any] = privacy
        for key in ("approval", "profile", *_SWITCHES):
            if key in data:
                kwargs[key] = data[key]
        disclosure, limits = _read_as_today(dict(tables["disclosure"]), dict(tables["limits"]))
        try:
            return cls(
                disclosure=DisclosurePolicy(**disclosure),
                limits=ResourceLimits(**limits),
                release=ReleaseRules(**tables["release"]),
                dp=DPRules(**dp),
                **kwargs,
            )
        except PolicyFileError as exc:
            raise PolicyFileError(f"{source}: {exc.message}", hint=exc.hint) from None


# What flame_lab wrote into every policy file before the release bound had to fit one call.
_OLD_DEFAULTS = {"max_release_bytes": 64 * MIB, "max_frame_bytes": 32 * MIB}


def _check_release_fits_a_call(release_bytes: Any, frame_bytes: Any) -> None:
    """A release the disclosure rules allow must reach the node in one call: no bound that the
    channel breaks first (issue 17: 64 MiB allowed, 24 MiB carried)."""
    if not release_bytes or release_bytes <= release_bytes_carried(frame_bytes):
        return
    raise PolicyFileError(
        f"disclosure.max_release_bytes ({release_bytes}) is more than one call of "
        f"limits.max_frame_bytes ({frame_bytes}) carries ({release_bytes_carried(frame_bytes)} "
        "bytes, as base64)",
        hint=f"Raise limits.max_frame_bytes to {frame_bytes_for(release_bytes)} or lower "
        f"disclosure.max_release_bytes to {release_bytes_carried(frame_bytes)}.",
    )


def _read_as_today(
    disclosure: dict[str, Any], limits: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A policy file with the former defaults (64 MiB releases, 32 MiB frames: releases above
    24 MiB never arrived) is read with today's: 24 MiB releases that fit a call."""
    if (
        disclosure.get("max_release_bytes") == _OLD_DEFAULTS["max_release_bytes"]
        and limits.get("max_frame_bytes") == _OLD_DEFAULTS["max_frame_bytes"]
    ):
        disclosure["max_release_bytes"] = DEFAULT_RELEASE_BYTES
        limits["max_frame_bytes"] = frame_bytes_for(DEFAULT_RELEASE_BYTES)
    return disclosure, limits


SWITCHES = ("node_sealing", "image_environments")  # on/off settings at the policy's top
_SWITCHES = SWITCHES
_DISCLOSURE_TYPES: dict[str, type] = {
    "min_records": int,
    "min_count": int,
    "suppress_small_counts": bool,
    "refuse_row_level": bool,
    "max_release_bytes": int,
    "allow_opaque_bytes": bool,
}
_RELEASE_TYPES: dict[str, type] = {
    "max_label_chars": int,
    "max_values_ratio": float,
    "progress_step": int,
    "log_lines": int,
    "log_lines_per_second": int,
}
_RELEASE_KEYS = (*_RELEASE_TYPES, "analysis_logs")
_DP_KEYS = ("require_dp", "max_epsilon_per_release", "min_sensitivity", "clip_lower", "clip_upper")


def _check_number(name: str, value: Any, kind: type) -> None:
    if kind is bool:
        if not isinstance(value, bool):
            raise PolicyFileError(f"{name} must be true or false, not {value!r}")
        return
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        what = "a whole number" if kind is int else "a number"
        raise PolicyFileError(f"{name} must be {what}, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise PolicyFileError(f"{name} must be greater than 0, not {value!r}")


def _check_table(table: Mapping[str, Any], known: Mapping[str, type], section: str) -> None:
    for key, value in table.items():
        if (value is None and key == "min_count") or (
            key == "max_release_bytes" and type(value) is int and value == 0
        ):
            continue
        _check_number(f"{section}.{key}", value, known[key])


def _refuse_unknown(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise PolicyFileError(
            f"{where}: unknown setting(s) {', '.join(unknown)}",
            hint=f"Known settings here: {', '.join(known)}.",
        )


def load_policy(path: str | os.PathLike[str]) -> NodePolicy:
    """Read a node policy: JSON when the file name ends in .json, TOML otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyFileError(
            f"No policy file at {path}",
            hint="Write one with `flame_lab.privacy.dump_policy(NodePolicy(), path)`.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"Cannot read the policy file {path}: {exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise PolicyFileError(f"The policy file {path} is not valid {kind}: {exc}") from None
    return NodePolicy.from_dict(data, source=str(path))


def dump_policy(policy: NodePolicy, path: str | os.PathLike[str]) -> None:
    """Write a node policy atomically: JSON for a .json name, TOML (own small writer) otherwise."""
    path = Path(path)
    data = policy.to_dict()
    text = json.dumps(data, indent=2) + "\n" if path.suffix == ".json" else _to_toml(data)
    _atomic_write(path, text.encode("utf-8"))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string accepts JSON's escapes


def _to_toml(data: Mapping[str, Any]) -> str:
    """Top-level scalars, then one [table] per nested mapping: all a policy needs."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    for name, table in data.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside the target, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
