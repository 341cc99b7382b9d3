"""An in-process federation: one Runtime per simulated node, mailboxes in memory, no crypto.

Used by StarModelTester. Every blocking wait wakes up when a message arrives, when any node
failed (the wait then ends its thread quietly), or when every node still running waits for a
message no one can send any more (a deadlock, reported as a StarError instead of hanging).
"""

from __future__ import annotations

import itertools
import pickle
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flame_lab.errors import StarError
from flame_lab.star.runtime import FinalSubmission, Message, Role

if TYPE_CHECKING:
    import numpy as np


class Aborted(BaseException):
    """Raised inside a node's thread once another node failed, so that the thread ends."""


@dataclass(frozen=True)
class LogEntry:
    """One flame_log line of one simulated node."""

    node_id: str
    role: Role
    log_type: str
    message: str


@dataclass(frozen=True)
class NodeSpec:
    """What one simulated node is: its id, role and data (analyzers only)."""

    node_id: str
    role: Role
    data: Any = None


class InProcessFederation:
    """Mailboxes, logs, failure and the final submission shared by the simulated nodes."""

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        *,
        data_type: str,
        analysis_id: str = "analysis_id",
        project_id: str = "project_id",
        rng: np.random.Generator | None = None,
        on_log: Callable[[LogEntry], None] | None = None,
    ) -> None:
        aggregators = [n.node_id for n in nodes if n.role == "aggregator"]
        if len(aggregators) != 1:
            raise StarError(f"A star federation needs exactly one aggregator, got {aggregators}.")
        self.nodes = {n.node_id: n for n in nodes}
        self.aggregator_id = aggregators[0]
        self.data_type = data_type
        self.analysis_id = analysis_id
        self.project_id = project_id
        self.rng = rng
        self.logs: list[LogEntry] = []
        self.submission: FinalSubmission | None = None
        self.failure: tuple[str, BaseException] | None = None
        self._on_log = on_log
        self._cond = threading.Condition()
        self._mailboxes: dict[str, deque[Message]] = {n: deque() for n in self.nodes}
        self._running: set[str] = set(self.nodes)
        self._blocked: set[str] = set()
        self._ids = itertools.count(1)

    def set_data(self, node_id: str, data: Any) -> None:
        """Give a node its data after the federation exists (test_mode nodes join one by one)."""
        with self._cond:
            spec = self.nodes[node_id]
            self.nodes[node_id] = NodeSpec(spec.node_id, spec.role, data)

    def runtime(self, node_id: str) -> InProcessRuntime:
        return InProcessRuntime(self, self.nodes[node_id])

    # -- lifecycle, called by the tester ---------------------------------------------------
    def node_failed(self, node_id: str, error: BaseException) -> None:
        """Keep the first failure and wake every waiting node so that it stops."""
        with self._cond:
            if self.failure is None:
                self.failure = (node_id, error)
            self._cond.notify_all()

    def node_done(self, node_id: str) -> None:
        with self._cond:
            self._running.discard(node_id)
            self._cond.notify_all()

    def wait_until_done_or_failed(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._running or self.failure is not None)

    def still_running(self) -> set[str]:
        with self._cond:
            return set(self._running)

    # -- used by the runtimes --------------------------------------------------------------
    def deliver(self, sender: str, receivers: Sequence[str], category: str, body: Any) -> None:
        with self._cond:
            if self.failure is not None:
                raise Aborted
            data = _pickled(body)
            for receiver in receivers:
                # A copy per receiver, through pickle as on FLAME: nodes never share objects.
                copy = pickle.loads(data)  # noqa: S301 - made just above, in this process
                message = Message(sender, category, copy, f"msg-{next(self._ids)}")
                self._mailboxes[receiver].append(message)
            self._cond.notify_all()

    def receive(self, node_id: str, timeout: float | None) -> Message | None:
        box = self._mailboxes[node_id]

        def ready() -> bool:
            return bool(box) or self.failure is not None or self._stalled()

        with self._cond:
            if timeout is None:
                self._blocked.add(node_id)
                self._cond.notify_all()  # the others re-check whether all are now stuck
            try:
                if not self._cond.wait_for(ready, timeout):
                    return None
            finally:
                self._blocked.discard(node_id)
            if box:
                return box.popleft()
            if self.failure is not None:
                raise Aborted
            waiting = sorted(self._running)
            raise StarError(
                f"Deadlock: node {node_id!r} waits for a message that no node can send: the "
                f"nodes still running ({', '.join(waiting)}) all wait for messages.",
                hint="Check that every node sends what the others await (send_message / "
                "await_messages), and that the aggregator's loop ends.",
            )

    def _stalled(self) -> bool:
        """Every running node waits without timeout and no message is on its way."""
        return self._running <= self._blocked and not any(self._mailboxes[n] for n in self._running)

    def log(self, entry: LogEntry) -> None:
        with self._cond:
            self.logs.append(entry)
        if self._on_log is not None:
            self._on_log(entry)

    def submit(self, node_id: str, submission: FinalSubmission) -> None:
        with self._cond:
            if self.failure is not None:
                raise Aborted
            if self.submission is not None:
                raise StarError(
                    "The final result was already submitted once in this analysis.",
                    hint="Call submit_final_result once, from the aggregator.",
                )
            self.submission = submission


def _pickled(body: Any) -> bytes:
    """The bytes a FLAME node would send for ``body`` (it pickles intermediate data)."""
    try:
        return pickle.dumps(body)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise StarError(
            f"This message cannot travel between FLAME nodes: pickling it failed ({exc}).",
            hint="Send plain data (numbers, lists, dicts, arrays, frames, fitted models); not "
            "open files, locks, generators or functions defined inside other functions.",
        ) from None


class InProcessRuntime:
    """The Runtime of one simulated node of an InProcessFederation."""

    def __init__(self, federation: InProcessFederation, node: NodeSpec) -> None:
        self._fed = federation
        self._node = node
        self._progress = 0

    def __repr__(self) -> str:
        return f"<InProcessRuntime node={self._node.node_id!r} role={self._node.role!r}>"

    def get_id(self) -> str:
        return self._node.node_id

    def get_role(self) -> Role:
        return self._node.role

    def get_participant_ids(self) -> list[str]:
        return [n for n in self._fed.nodes if n != self._node.node_id]

    def get_aggregator_id(self) -> str:
        return self._fed.aggregator_id

    def get_analysis_id(self) -> str:
        return self._fed.analysis_id

    def get_project_id(self) -> str:
        return self._fed.project_id

    def get_data_sources(self) -> list[str]:
        if self._node.role != "default":
            return []
        return [f"{self._fed.data_type}-source-{i}" for i in range(len(self._sources()))]

    def get_fhir_data(self, queries: list[str]) -> list[dict[str, Any]] | None:
        return self._data("fhir", queries)

    def get_s3_data(self, keys: list[str]) -> list[dict[str, bytes]] | None:
        return self._data("s3", keys)

    def flame_log(self, message: str, log_type: str) -> None:
        self._fed.log(LogEntry(self._node.node_id, self._node.role, log_type, message))

    def set_progress(self, progress: int) -> None:
        self._progress = progress

    def get_progress(self) -> int:
        return self._progress

    def send_message(
        self, receivers: Sequence[str], category: str, body: Any
    ) -> tuple[list[str], list[str]]:
        known = [r for r in receivers if r in self._fed.nodes and r != self._node.node_id]
        self._fed.deliver(self._node.node_id, known, category, body)
        return known, [r for r in receivers if r not in known]

    def receive_message(self, timeout: float | None) -> Message | None:
        return self._fed.receive(self._node.node_id, timeout)

    def submit_final_result(self, submission: FinalSubmission) -> dict[str, str]:
        self._fed.submit(self._node.node_id, submission)
        return {"status": "success"}

    def random_generator(self) -> np.random.Generator | None:
        return self._fed.rng

    # -- data ------------------------------------------------------------------------------
    def _sources(self) -> list[Any]:
        data = self._node.data
        if data is None:
            return []
        return list(data) if isinstance(data, list) else [data]

    def _data(self, kind: str, keys: list[str]) -> Any:
        if self._node.role != "default":
            self.flame_log(f"The aggregator has no {kind} data.", "warn")
            return None
        if kind != self._fed.data_type:
            raise StarError(
                f"The analysis asked for {kind} data, but the tester was given "
                f"{self._fed.data_type} data.",
                hint="Use the same data_type in StarModel and StarModelTester.",
            )
        if not keys:
            return self._node.data
        sources = self._sources()
        for source in sources:
            if not isinstance(source, dict):
                raise StarError(
                    f"A query was given, but a data split holds a {type(source).__name__}, "
                    f"not a dict of {'{query: bundle}' if kind == 'fhir' else '{key: bytes}'}.",
                    hint="Give each split as a list of dicts (one per data source), or no query.",
                )
        return [
            {k: v for k, v in source.items() if k in keys}
            for source in sources
            if any(k in source for k in keys)
        ]
