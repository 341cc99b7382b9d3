"""The node agent's answers to an analysis process: data, messages, logs, progress, result.

:class:`NodeService` holds the RPC methods that
:class:`~flame_lab.sandbox.node.runtime_client.AgentRuntime` calls from inside the confined
analysis, and enforces the node's rules there, where the analysis cannot bypass them: every
message a data node sends passes the disclosure check first, only the aggregator may submit a
final result, progress only moves forward. The analysis is untrusted: every argument is checked.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flame_lab.errors import DPParameterError, PayloadError, PolicyRefused, StarError
from flame_lab.limits import ResourceLimits
from flame_lab.privacy import NodePolicy
from flame_lab.release.channel import Charge, ReleaseChannel
from flame_lab.release.logs import LogGate
from flame_lab.sandbox.node.bounds import RunBounds
from flame_lab.sandbox.node.datasets import NodeData
from flame_lab.sandbox.node.ipc import from_json, to_json
from flame_lab.sandbox.node.runtime_client import (
    from_channel,
    submission_from_channel,
    to_channel,
)
from flame_lab.star.results import check_local_dp
from flame_lab.star.runtime import FinalSubmission, Message, Role

HUB_LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
# The SDK's log types (flame_log(log_type=...)) and the hub level each becomes.
LOG_LEVELS = {
    "normal": "info",
    "info": "info",
    "debug": "debug",
    "notice": "notice",
    "warning": "warn",
    "warn": "warn",
    "alert": "alert",
    "emergency": "emerg",
    "emerg": "emerg",
    "error": "error",
    "critical": "crit",
    "crit": "crit",
}
MAX_LOG_CHARS = 16 * 1024
_TRACEBACK_FRAME = re.compile(r'^(\s*File "[^"]{1,300}", line )\d+(, in [\w<>.]{1,80})$')
MAX_RECEIVERS = 1024
MAX_CATEGORY = 256
_WAIT_SLICE = 0.5


def hub_level(log_type: str) -> str:
    """The hub's level (emerg .. debug) for one of the SDK's log types; unknown ones are info."""
    return LOG_LEVELS.get(str(log_type).lower(), "info")


def encode_body(value: Any) -> bytes:
    """A message body as bytes for the transport (which encrypts them); never a pickle."""
    return json.dumps(to_json(to_channel(value)), separators=(",", ":"), allow_nan=True).encode()


def decode_body(data: bytes) -> Any:
    """The value of a message body received from another node."""
    try:
        return from_channel(from_json(json.loads(data)))
    except (ValueError, RecursionError):
        raise PayloadError(
            "A message from another node could not be read.",
            hint="The nodes may run different flame_lab versions.",
        ) from None


# -- node-to-node transport ------------------------------------------------------------------
class Transport(Protocol):
    """How one node's messages reach the others (the agent's is the hub messenger, encrypted)."""

    def send(self, receiver_ids: list[str], category: str, body: bytes) -> list[str]:
        """Hand ``body`` to each receiver at once; the ones accepted for delivery."""
        ...

    def receive(self, timeout: float | None) -> Message | None:
        """The next message for this node (body: bytes), or None after ``timeout`` seconds."""
        ...


class Switchboard:
    """A hub-less, in-memory message exchange between the services of one process (tests)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._boxes: dict[str, deque[Message]] = {}
        self._ids = itertools.count(1)

    def transport(self, node_id: str) -> LocalTransport:
        """The transport of node ``node_id`` (its mailbox is created now)."""
        with self._cond:
            self._boxes.setdefault(node_id, deque())
        return LocalTransport(self, node_id)

    def _put(self, sender: str, receiver: str, category: str, body: bytes) -> bool:
        with self._cond:
            box = self._boxes.get(receiver)
            if box is None:
                return False
            box.append(Message(sender, category, bytes(body), f"local-{next(self._ids)}"))
            self._cond.notify_all()
            return True

    def _get(self, node_id: str, timeout: float | None) -> Message | None:
        box = self._boxes[node_id]
        with self._cond:
            if not self._cond.wait_for(lambda: bool(box), timeout):
                return None
            return box.popleft()


@dataclass
class LocalTransport:
    """One node's end of a :class:`Switchboard`."""

    switchboard: Switchboard
    node_id: str

    def send(self, receiver_ids: list[str], category: str, body: bytes) -> list[str]:
        return [r for r in receiver_ids if self.switchboard._put(self.node_id, r, category, body)]

    def receive(self, timeout: float | None) -> Message | None:
        return self.switchboard._get(self.node_id, timeout)


# -- the service ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeFacts:
    """Who this node is within one analysis."""

    node_id: str
    role: Role
    participant_ids: tuple[str, ...]
    aggregator_id: str
    analysis_id: str
    project_id: str

    def __post_init__(self) -> None:
        if self.role not in ("default", "aggregator"):
            raise StarError(f"A node's role is 'default' or 'aggregator', not {self.role!r}.")
        object.__setattr__(
            self, "participant_ids", tuple(p for p in self.participant_ids if p != self.node_id)
        )


def _check_str_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StarError(f"{name} must be a list of strings.", hint="Pass e.g. ['a', 'b'].")
    return value


class NodeService:
    """The RPC methods an analysis calls, answered from this node's data and rules."""

    def __init__(
        self,
        facts: NodeFacts,
        data: NodeData | None,
        policy: NodePolicy,
        transport: Transport,
        *,
        record_count: int | None = None,
        on_log: Callable[[str, str], None] | None = None,
        on_node_log: Callable[[str, str], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_final: Callable[[FinalSubmission], dict[str, str]] | None = None,
        on_refusal: Callable[[PolicyRefused], None] | None = None,
        charge: Charge | None = None,
        lint: bool = False,
        node_name: str | None = None,
    ) -> None:
        if facts.role == "default" and data is None:
            raise StarError("A data node needs its NodeData.", hint="Load the node's data folder.")
        self.facts = facts
        self.data = data
        self.policy = policy
        self.record_count = (
            record_count if record_count is not None else (data.record_count if data else 0)
        )
        self.transport = transport
        self.release = ReleaseChannel(
            policy,
            node=node_name or facts.node_id,
            role=facts.role,
            record_count=self.record_count,
            charge=charge,
            lint=lint,
        )
        self.gate = LogGate.of(policy.release)
        self._on_log = on_log
        self._on_node_log = on_node_log or on_log
        self._on_progress = on_progress
        self._on_final = on_final
        self._on_refusal = on_refusal
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.progress = 0
        self.reported_progress = 0
        self.refusal: PolicyRefused | None = None
        self.submission: FinalSubmission | None = None
        self.bounds = RunBounds()

    def apply_limits(self, limits: ResourceLimits) -> RunBounds:
        """Start a run's budgets (logs, messages) under ``limits``; the runner shares them."""
        self.bounds = RunBounds(limits)
        return self.bounds

    def __repr__(self) -> str:
        return f"<NodeService node={self.facts.node_id!r} role={self.facts.role!r}>"

    def methods(self) -> dict[str, Callable[..., Any]]:
        """The RPC table to serve on the analysis channel."""
        return {
            "hello": self.hello,
            "get_fhir_data": self.get_fhir_data,
            "get_s3_data": self.get_s3_data,
            "log": self.log,
            "declare_local_dp": self.declare_local_dp,
            "set_progress": self.set_progress,
            "get_progress": self.get_progress,
            "send_message": self.send_message,
            "receive_message": self.receive_message,
            "submit_final_result": self.submit_final_result,
        }

    def close(self) -> None:
        """The run is over: wake and end any wait for messages; report dropped log lines."""
        if self._closed.is_set():
            return
        self._closed.set()
        summary = self.gate.summary()
        if summary is not None:
            self.node_log("warn", summary)

    # -- facts and data -----------------------------------------------------------------------
    def data_sources(self) -> list[str]:
        if self.data is None:
            return []
        sources = []
        if self.data.s3:
            sources.append("s3")
        if self.data.fhir.counts():
            sources.append("fhir")
        return sources

    def hello(self) -> dict[str, Any]:
        """The static facts, fetched once by the analysis."""
        f = self.facts
        return {
            "node_id": f.node_id,
            "role": f.role,
            "participant_ids": list(f.participant_ids),
            "aggregator_id": f.aggregator_id,
            "analysis_id": f.analysis_id,
            "project_id": f.project_id,
            "data_sources": self.data_sources(),
        }

    def get_fhir_data(self, queries: Any) -> list[dict[str, Any]] | None:
        """One dict {query: searchset Bundle}; every stored type when no query is given."""
        queries = _check_str_list("FHIR queries", queries)
        if self.data is None:
            self.node_log("warn", "The aggregator has no FHIR data.")
            return None
        store = self.data.fhir
        wanted = queries or list(store.counts())
        return [{q: store.search(q) for q in wanted}]

    def get_s3_data(self, keys: Any) -> list[dict[str, bytes]] | None:
        """One dict {key: bytes}; every object when no key is given."""
        keys = _check_str_list("s3 keys", keys)
        if self.data is None:
            self.node_log("warn", "The aggregator has no s3 data.")
            return None
        return [self.data.s3_objects(keys or None)]

    # -- logs and progress --------------------------------------------------------------------
    def node_log(self, level: str, text: str) -> None:
        """A line of the node itself (refusals, caps): readable by the hub, never capped."""
        if self._on_node_log is not None:
            self._on_node_log(level, text)

    def _analysis_line(self, level: str, text: str, what: str, checked: str | None = None) -> None:
        """A line the analysis wrote: capped, checked under strict, then handed on (sealed)."""
        if not self.gate.admit(text):
            return
        try:
            self.release.text(text if checked is None else checked, what)
        except PolicyRefused as exc:
            raise self._refuse(exc) from None
        if self._on_log is not None:
            self._on_log(level, text)

    def log(self, message: Any, log_type: Any = "info") -> None:
        """``flame_log`` of the analysis: cut to the run's line bound, while its log budget
        lasts (stdout and stderr lines come bounded by the runner)."""
        text = str(message)
        if len(text) > MAX_LOG_CHARS:
            text = text[:MAX_LOG_CHARS] + f" ... ({len(text) - MAX_LOG_CHARS} characters cut)"
        line, notice = self.bounds.admit_log(text)
        if line is None:
            if notice is not None:
                self.node_log("warn", notice)
            return
        self._analysis_line(hub_level(str(log_type)), line, "a log line")

    def output(self, stream: str, line: str) -> None:
        """A line the analysis printed (stdout/stderr); a refused one stops the run. In a
        traceback's frame line the line number names code, not data: it is not checked."""
        level = "info" if stream == "stdout" else "warn"
        if self.refusal is not None:
            return  # the run is being stopped: nothing more leaves
        checked = _TRACEBACK_FRAME.sub(r"\1#\2", line)
        try:
            self._analysis_line(level, line, f"a line of {stream}", checked)
        except PolicyRefused:
            pass  # recorded as the run's refusal; on_refusal stops the run

    def set_progress(self, progress: Any) -> None:
        """Clamp to 0..100 and never go back; the hub sees it as the profile reports it."""
        if isinstance(progress, bool) or not isinstance(progress, int | float):
            raise StarError(f"Progress must be a number, not {type(progress).__name__}.")
        value = max(0, min(100, int(progress)))
        with self._lock:
            if value <= self.progress:
                return
            self.progress = value
            reported = self.release.progress(value)
            if reported <= self.reported_progress:
                return
            self.reported_progress = reported
        if self._on_progress is not None:
            self._on_progress(reported)

    def declare_local_dp(self, epsilon: Any, sensitivity: Any) -> None:
        """The analysis is a StarLocalDPModel (the node then noises its own releases itself)."""
        dp = check_local_dp(epsilon, sensitivity)
        if dp is not None:
            self.release.declare_dp(dp)

    def get_progress(self) -> int:
        return self.progress

    # -- messages -----------------------------------------------------------------------------
    def _refuse(self, error: PolicyRefused) -> PolicyRefused:
        with self._lock:
            first = self.refusal is None
            if first:
                self.refusal = error
        if first:
            self.node_log("error", f"Refused to release: {error.message}")
            if self._on_refusal is not None:
                self._on_refusal(error)
        return error

    def send_message(self, receivers: Any, category: Any, body: Any) -> list[list[str]]:
        """Release ``body`` (disclosure check on data nodes), then hand it to each receiver."""
        receivers = _check_str_list("receivers", receivers)
        if (
            not isinstance(category, str)
            or len(category) > MAX_CATEGORY
            or len(receivers) > MAX_RECEIVERS
        ):
            raise StarError(
                f"A message needs a text category (at most {MAX_CATEGORY} characters) and a "
                f"list of at most {MAX_RECEIVERS} receivers."
            )
        value = from_channel(body)
        if self.refusal is not None:
            raise self.refusal
        try:
            value = self.release.message(value)
        except (PolicyRefused, DPParameterError) as exc:
            raise self._refuse(PolicyRefused(exc.message, hint=exc.hint)) from None
        data = encode_body(value)
        self.bounds.admit_message(len(data))
        known = [r for r in receivers if r in self.facts.participant_ids]
        accepted = set(self.transport.send(known, category, data)) if known else set()
        acked = [r for r in receivers if r in accepted]
        return [acked, [r for r in receivers if r not in accepted]]

    def receive_message(self, timeout: Any = None) -> dict[str, Any] | None:
        """The next message for this node, or None after ``timeout`` s or once the run ends."""
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
        ):
            raise StarError(f"A timeout must be a number of seconds >= 0, not {timeout!r}.")
        remaining = None if timeout is None else float(timeout)
        while not self._closed.is_set():
            step = _WAIT_SLICE if remaining is None else min(_WAIT_SLICE, remaining)
            message = self.transport.receive(step)
            limit = self.bounds.limits.max_message_bytes
            if message is not None and len(message.body) > limit:
                self.log(
                    f"Dropped a message of {len(message.body)} bytes from {message.sender}: "
                    f"this node reads at most {limit} (limits.max_message_bytes).",
                    "warning",
                )
                continue
            if message is not None:
                return {
                    "sender": message.sender,
                    "category": message.category,
                    "body": to_channel(decode_body(message.body)),
                    "id": message.id,
                }
            if remaining is not None:
                remaining -= step
                if remaining <= 0:
                    return None
        return None

    # -- the final result ---------------------------------------------------------------------
    def submit_final_result(self, submission: Any) -> dict[str, str]:
        """Hand the aggregator's final result to the agent (which seals and uploads it)."""
        if self.facts.role != "aggregator":
            raise self._refuse(
                PolicyRefused(
                    f"node {self.facts.node_id!r} holds data; only the aggregator may submit "
                    "a final result",
                    hint="Return results from analysis_method; the aggregator submits them.",
                )
            )
        final = submission_from_channel(submission)
        with self._lock:
            if self.submission is not None:
                raise StarError(
                    "The final result was already submitted once in this analysis.",
                    hint="Call submit_final_result once, from the aggregator.",
                )
            self.submission = final
        try:
            final = self.release.final(final)
            if self._on_final is None:
                return {"status": "success"}
            answer = self._on_final(final)
        except (PolicyRefused, DPParameterError) as exc:  # e.g. the privacy budget is spent
            raise self._refuse(PolicyRefused(exc.message, hint=exc.hint)) from None
        return {str(k): str(v) for k, v in (answer or {}).items()}


__all__ = [
    "HUB_LEVELS",
    "LocalTransport",
    "NodeFacts",
    "NodeService",
    "Switchboard",
    "Transport",
    "decode_body",
    "encode_body",
    "hub_level",
]
