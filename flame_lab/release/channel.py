"""One release channel per node and run: everything that leaves a node passes here.

Messages, the final result, the analysis's log lines and failure text and its progress all go
through :class:`ReleaseChannel`, under the node's profile:

- ``flame`` behaves as a real FLAME node: nothing is checked or altered (approval is the
  control); DP noise is added by the node to a ``StarLocalDPModel`` final result, as FLAME's
  own node services do.
- ``strict`` checks what leaves a data node (:mod:`flame_lab.release.checks`) plus rules across
  the whole run (values released in total against the record count; an integral value at
  one path moving by a small count between releases, i.e. differencing) and refuses with the
  rule, the value's path and the node, never by silently changing the release. Progress is
  reported in steps.

With ``lint=True`` (the researcher's local test of a ``flame`` node) the strict checks run and
their findings are recorded instead of refusing, so surprises at a strict node are rare.
The same class serves the sandbox's agent and ``%flame test``: the node's rules in one place.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from flame_lab.errors import DPParameterError, PayloadError, PolicyRefused
from flame_lab.privacy import NodePolicy
from flame_lab.release.checks import Inspection, StrictRules, Violation, inspect, inspect_text
from flame_lab.release.dp import (
    NodeDP,
    epsilon_of,
    node_parameters,
    noise_release,
    noisy_number,
)
from flame_lab.star.runtime import FinalSubmission, LocalDP

Charge = Callable[[float], None]
KEPT_PER_PATH = 16


@dataclass(frozen=True)
class Finding:
    """A violation found on one node: what a strict node would refuse (or refused)."""

    node: str
    what: str
    violation: Violation

    def describe(self) -> str:
        return f"{self.node}: {self.what} {self.violation.describe()}"


class ReleaseChannel:
    """What one node lets leave during one run, under its profile."""

    def __init__(
        self,
        policy: NodePolicy,
        *,
        node: str,
        role: str,
        record_count: int,
        charge: Charge | None = None,
        lint: bool = False,
    ) -> None:
        self.policy = policy
        self.node = node
        self.role = role
        self.record_count = record_count
        self.rules = StrictRules.of(policy)
        self.strict = policy.profile == "strict"
        self.lint = lint and not self.strict
        self.charge = charge
        self.local_dp: LocalDP | None = None
        self.values_released = 0
        self.epsilon_spent = 0.0
        self.findings: list[Finding] = []
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ReleaseChannel node={self.node!r} profile={self.policy.profile!r}>"

    @property
    def checks(self) -> bool:
        """Whether releases of this node are inspected (strict, or linted for the researcher)."""
        return self.role == "default" and (self.strict or self.lint)

    @property
    def noises_own_releases(self) -> bool:
        """A data node adds DP noise itself under strict or ``require_dp``."""
        return self.role == "default" and (self.strict or self.policy.dp.require_dp)

    # -- decisions -------------------------------------------------------------------------
    def _decide(self, what: str, violations: list[Violation]) -> None:
        if not violations:
            return
        with self._lock:
            self.findings += [Finding(self.node, what, v) for v in violations]
        if self.lint:
            return
        first = violations[0]
        others = [f"{v.rule} at {v.path}" for v in violations[1:4]]
        more = f"; also {', '.join(others)}" if others else ""
        if len(violations) > 4:
            more += f" and {len(violations) - 4} more"
        raise PolicyRefused(
            f"node {self.node} refused to release {what}: {first.path}: {first.detail} "
            f"(rule {first.rule}){more}",
            hint=_HINTS.get(first.rule, "Release aggregates over enough records."),
        )

    def _run_rules(self, found: Inspection, root: str, paths: bool = True) -> list[Violation]:
        """The rules across the run: total values released, differencing at one path (not
        for text, whose numbers have no stable path)."""
        violations = []
        limit = self.rules.max_values_ratio * self.record_count
        total = self.values_released + found.values
        if self.rules.row_level and total > limit:
            violations.append(
                Violation(
                    "run-total",
                    root,
                    f"this run would have released {total} values from {self.record_count} "
                    f"records; this node allows {math.floor(limit)} in one run "
                    "(max_values_ratio)",
                )
            )
        threshold = self.rules.count_threshold
        if self.rules.small_counts and paths:
            for path, value in found.integrals.items():
                for earlier in self._seen.get(path, ()):
                    if 0 < abs(value - earlier) < threshold:
                        violations.append(
                            Violation(
                                "differencing",
                                path,
                                f"changed by fewer than {threshold} since an earlier release "
                                "of this run: the difference is a small count",
                            )
                        )
                        break
        return violations

    def _remember(self, found: Inspection) -> None:
        self.values_released += found.values
        for path, value in found.integrals.items():
            kept = self._seen.setdefault(path, [])
            if value not in kept and len(kept) < KEPT_PER_PATH:
                kept.append(value)

    # -- what leaves -----------------------------------------------------------------------
    def declare_dp(self, local_dp: LocalDP) -> None:
        """The analysis is a StarLocalDPModel: this node's own releases are noised (if it
        noises them) with the node's parameters."""
        self.local_dp = local_dp

    def _require_dp(self, what: str) -> None:
        if self.policy.dp.require_dp and self.local_dp is None:
            self._decide(
                what,
                [
                    Violation(
                        "require-dp",
                        "result",
                        "this node releases only with differential privacy (require_dp)",
                    )
                ],
            )

    def _spend(self, epsilon: float) -> None:
        if self.charge is not None:
            self.charge(epsilon)
        self.epsilon_spent += epsilon

    def params(self) -> NodeDP:
        assert self.local_dp is not None
        return node_parameters(self.local_dp, self.policy.dp)

    def message(self, value: Any) -> Any:
        """A message this node sends; returns what may leave (noised where the node adds DP),
        or raises PolicyRefused. An aggregator's messages hold no data of its own."""
        if self.role != "default":
            return value
        what = "a message"
        self._require_dp(what)
        if self.local_dp is not None and self.noises_own_releases:
            noised = noise_release(value, self.params())
            if noised.numbers:
                self._spend(noised.epsilon)
            value = noised.value
        if self.checks:
            found = inspect(value, record_count=self.record_count, rules=self.rules)
            with self._lock:
                violations = found.violations + self._run_rules(found, "result")
                self._remember(found)
            self._decide(what, violations)
        return value

    def text(self, text: str, what: str) -> None:
        """A log line or failure message of the analysis; raises PolicyRefused under strict."""
        if not self.checks:
            return
        found = inspect_text(text, record_count=self.record_count, rules=self.rules, root=what)
        found.integrals.clear()
        with self._lock:
            violations = found.violations + self._run_rules(found, what, paths=False)
            self._remember(found)
        self._decide(what, violations)

    def progress(self, value: int) -> int:
        """Progress as reported to the hub: in steps under strict (100 stays 100)."""
        step = self.policy.release.progress_step
        if self.strict and self.role == "default" and value < 100:
            return value - value % step
        return value

    def final(self, submission: FinalSubmission) -> FinalSubmission:
        """The aggregator's final result(s): node-side OpenDP noise on each number for local DP,
        the epsilon used charged (per number released), parameters the node's own."""
        self._check_size(submission)
        self._require_dp("the final result")
        dp = submission.local_dp
        if dp is None:
            return submission
        self.local_dp = dp
        params = self.params()
        results = []
        for released in submission.results:
            number = _one_number(released.value)
            results.append(
                replace(released, value=str(noisy_number(number, params)), output_type="str")
            )
        self._spend(epsilon_of(params) * len(results))
        used = LocalDP(params.epsilon, params.sensitivity)
        return replace(submission, results=tuple(results), local_dp=used)

    def _check_size(self, submission: FinalSubmission) -> None:
        """Under every profile a final result is at most max_release_bytes, as the node seals
        it: the bound the policy states, not the channel's larger frame (limits.py)."""
        limit = self.policy.disclosure.max_release_bytes
        for index, released in enumerate(submission.results if limit else ()):
            size = released_size(released.value)
            if size > limit:
                which = f"final result #{index + 1}" if len(submission.results) > 1 else "it"
                raise PolicyRefused(
                    f"node {self.node} refused to release the final result: {which} is {size} "
                    f"bytes; this node lets at most {limit} leave (disclosure.max_release_bytes)",
                    hint="Return aggregates, not data; or ask the data steward to raise "
                    "disclosure.max_release_bytes (and limits.max_frame_bytes with it).",
                )


def released_size(value: Any) -> int:
    """The size of a final result as the node stores it: its bytes, its UTF-8 text, or its
    payload (JSON, .npy, table; a pickle the node cannot open counts as its bytes)."""
    from flame_lab.security import payload

    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    try:
        return len(payload.encode(value)[0])
    except PayloadError:  # not storable at all: the node's own encoding says why, next
        return 0


def _one_number(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DPParameterError(
            "local differential privacy needs a number as each final result, not a "
            f"{type(value).__name__}",
            hint="Return an int or float from aggregation_method (StarLocalDPModel).",
        )
    return float(value)


_HINTS = {
    "min-records": "Run the analysis on nodes with more records, or ask the data steward.",
    "row-level": "Return aggregates (counts, sums, means, model coefficients), not rows.",
    "run-total": "Release fewer numbers over the run (fewer rounds or coefficients).",
    "text": "Return numbers and short labels; keep rows out of strings and dict keys.",
    "small-count": "Aggregate over larger groups, or leave out groups of fewer records.",
    "offset-count": "Release counts as they are, over groups large enough.",
    "group-statistic": "Leave out the statistics of groups with few records.",
    "differencing": "Release each count once, or over groups that stay large.",
    "require-dp": "Use StarLocalDPModel(epsilon=..., sensitivity=...) for this node.",
    "opaque": "Return numbers, lists, dicts or NumPy arrays, not raw bytes.",
    "type": "Return dicts, lists, numbers, strings, NumPy arrays or DataFrames.",
    "size": "Return aggregates, not data.",
}
