"""The lower-level calls analysis code may use (FLAME's ``FlameCoreSDK``), over a Runtime.

The same names and arguments as PrivateAIM's SDK, so that code calling ``self.flame.<method>``
runs unchanged on real FLAME nodes. Message matching, the ``analysis_finished`` signal and
intermediate-data conventions live here once, so each Runtime is only a mailbox.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import StringIO
from typing import Any, Literal

from flame_lab.errors import StarError
from flame_lab.star.results import prepare_submission
from flame_lab.star.runtime import (
    LocalDP,
    Message,
    OutputType,
    Role,
    Runtime,
    require_runtime,
)

FINISHED_CATEGORY = "analysis_finished"
INTERMEDIATE_CATEGORY = "intermediate_data"
STORAGE_CATEGORY = "flame_lab_intermediate_storage"
# Categories the SDK itself uses between nodes: never handed to the analysis as messages.
_INTERNAL = (FINISHED_CATEGORY, STORAGE_CATEGORY)
#: The log types FLAME's SDK (flamesdk 0.6) accepts; anything else fails the run on a node.
LOG_TYPES = ("debug", "info", "notice", "warn", "alert", "emerg", "error", "crit")
_WARNING = "warn"
_TAG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass
class NodeConfig:
    """What ``flame.config`` tells about this node (flamesdk's NodeConfig, without tokens)."""

    node_id: str
    node_role: str
    analysis_id: str
    project_id: str
    finished: bool = False

    def finish_analysis(self) -> None:
        self.finished = True


@dataclass(frozen=True)
class _Stored:
    """One piece of intermediate data kept by save_intermediate_data."""

    id: str
    data: Any
    tag: str | None


class FlameCoreSDK:
    """flame_lab's stand-in for ``flamesdk.FlameCoreSDK``, bound to the current Runtime."""

    def __init__(
        self,
        aggregator_requires_data: bool = False,
        stream_log_level: int = 20,
        silent: bool = False,
        status_sync: Any = None,
        *,
        runtime: Runtime | None = None,
    ) -> None:
        if isinstance(aggregator_requires_data, Runtime):  # FlameCoreSDK(runtime), as before
            runtime, aggregator_requires_data = aggregator_requires_data, False
        self._runtime = runtime if runtime is not None else require_runtime()
        self._inbox: list[Message] = []
        self._read: list[Message] = []
        self._held_log = ""
        self._stored: list[_Stored] = []
        self._stored_global: dict[str, Any] = {}
        self._received: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self.config = NodeConfig(
            node_id=self._runtime.get_id(),
            node_role=self._runtime.get_role(),
            analysis_id=self._runtime.get_analysis_id(),
            project_id=self._runtime.get_project_id(),
        )

    def __repr__(self) -> str:
        return f"<FlameCoreSDK node={self.get_id()!r} role={self.get_role()!r}>"

    @property
    def runtime(self) -> Runtime:
        """The runtime this SDK talks to (tester, sandbox node, ...)."""
        return self._runtime

    @property
    def finished(self) -> bool:
        """True once this node finished or heard ``analysis_finished`` from the aggregator."""
        return self.config.finished

    @property
    def _finished(self) -> bool:
        return self.config.finished

    @_finished.setter
    def _finished(self, value: bool) -> None:
        self.config.finished = value

    # -- general -------------------------------------------------------------------------
    def get_id(self) -> str:
        return self._runtime.get_id()

    def get_role(self) -> Role:
        return self._runtime.get_role()

    def get_participant_ids(self) -> list[str]:
        return list(self._runtime.get_participant_ids())

    def get_participants(self) -> list[dict[str, str]]:
        aggregator = self.get_aggregator_id()
        return [
            {"nodeId": node, "nodeType": "aggregator" if node == aggregator else "default"}
            for node in self.get_participant_ids()
        ]

    def get_aggregator_id(self) -> str:
        return self._runtime.get_aggregator_id()

    def get_analysis_id(self) -> str:
        return self._runtime.get_analysis_id()

    def get_project_id(self) -> str:
        return self._runtime.get_project_id()

    def analysis_finished(self) -> bool:
        """Tell every other node the analysis is over, and finish this node."""
        participants = self.get_participant_ids()
        if participants:
            self._runtime.send_message(participants, FINISHED_CATEGORY, {})
        self._finished = True
        return True

    def ready_check(
        self,
        nodes: list[str] | str = "all",
        attempt_interval: int = 30,
        timeout: int | None = None,
    ) -> dict[str, bool]:
        """Whether each node is part of the run and can be reached (every node of a flame_lab
        run is: messages wait at the hub for a node that starts later)."""
        wanted = self.get_participant_ids() if nodes == "all" else nodes
        self._check_peers(wanted, "check")
        return {node: True for node in wanted}

    def fhir_to_csv(
        self,
        fhir_data: dict[str, Any],
        col_key_seq: str,
        value_key_seq: str,
        input_resource: str,
        row_key_seq: str | None = None,
        row_id_filters: list[str] | None = None,
        col_id_filters: list[str] | None = None,
        row_col_name: str = "",
        separator: str = ",",
        output_type: Literal["file", "dict"] = "file",
    ) -> StringIO | dict[Any, dict[Any, Any]] | None:
        """A FHIR Bundle pivoted into CSV text or ``{column: {row: value}}`` (data nodes)."""
        from flame_lab.star.fhir_csv import fhir_to_csv

        if self.get_role() != "default":
            self.flame_log("Data API is not available, cannot convert FHIR to CSV", log_type="warn")
            return None

        def page(query: str) -> dict[str, Any] | None:
            found = [r for r in (self.get_fhir_data([query]) or []) if r]
            return found[0].get(query) if found else None

        return fhir_to_csv(
            fhir_data,
            col_key_seq,
            value_key_seq,
            input_resource,
            row_key_seq,
            row_id_filters,
            col_id_filters,
            row_col_name,
            separator,
            output_type,
            log=lambda text, level: self._runtime.flame_log(text, level),
            get_page=page,
        )

    def flame_log(
        self,
        msg: str | bytes | Iterable[str],
        sep: str = "",
        end: str = "",
        log_type: str = "info",
        append: bool = False,
        halt_submission: bool = False,
    ) -> None:
        """Log one line at this node, with flamesdk 0.6's rules: ``log_type`` is one of
        :data:`LOG_TYPES` and anything else, like ``'error'`` itself, fails the run; a line
        logged with ``halt_submission`` waits and goes out in front of the next ``append``."""
        if log_type not in LOG_TYPES:
            raise StarError(
                f"flame_log(log_type={log_type!r}) fails the analysis on a FLAME node: the "
                "SDK knows only " + ", ".join(LOG_TYPES) + ".",
                hint="Use e.g. log_type='warn' instead of 'warning', 'info' instead of 'normal'.",
            )
        if isinstance(msg, bytes):
            text = "".join(c for c in msg.decode("utf-8", errors="replace") if c.isprintable())
        elif isinstance(msg, str):
            text = msg
        elif isinstance(msg, Iterable):
            text = sep.join(str(part) for part in msg)
        else:
            raise StarError(
                f"flame_log got a {type(msg).__name__}; FLAME's SDK fails the analysis for a "
                "message that is neither text, bytes nor an iterable of text.",
                hint="Log str(value) or an f-string.",
            )
        text += end
        if halt_submission:
            self._held_log = text
            return
        if append:
            text, self._held_log = self._held_log + text, ""
        self._runtime.flame_log(text, log_type)
        if log_type == "error":
            raise StarError(
                f"The analysis logged an error and ends, as on a FLAME node: {text}",
                hint="flame_log(..., log_type='error') fails the run in FLAME's SDK; "
                "use 'warn' for a problem the analysis gets over.",
            )

    def get_progress(self) -> int:
        return self._runtime.get_progress()

    def set_progress(self, progress: int | float) -> None:
        """Report progress; like the SDK, ignore (with a warning) invalid or backward steps."""
        value = int(progress)
        if not 0 <= value <= 100:
            self.flame_log(f"Invalid progress: {progress} (must be 0..100).", log_type=_WARNING)
        elif value < self.get_progress():
            self.flame_log(
                f"Progress must increase (now {self.get_progress()}, given {value}).",
                log_type=_WARNING,
            )
        elif value > self.get_progress():
            self._runtime.set_progress(value)

    # -- messages ------------------------------------------------------------------------
    def send_message(
        self,
        receivers: list[str],
        message_category: str,
        message: Any,
        max_attempts: int = 1,
        timeout: int | None = None,
        attempt_timeout: int = 10,
    ) -> tuple[list[str], list[str]]:
        """Send ``message`` to other nodes of this analysis; (acknowledged, not acknowledged)."""
        self._check_peers(receivers, "send to")
        return self._runtime.send_message(list(receivers), message_category, message)

    def await_messages(
        self,
        senders: list[str],
        message_category: str,
        message_id: str | None = None,
        timeout: int | None = None,
    ) -> dict[str, list[Message] | None]:
        """Wait until each sender sent a message of the category (or timeout / finish)."""
        self._check_peers(senders, "wait for")
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished and not all(
            self._has(s, message_category, message_id) for s in senders
        ):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if remaining == 0.0:
                break
            if not self._pull(remaining):
                break
        return self._take(senders, message_category, message_id)

    def get_messages(self, status: Literal["unread", "read"] = "unread") -> list[Message]:
        """The messages this node got and has not (``'unread'``) or has (``'read'``) awaited."""
        if status not in ("unread", "read"):
            raise StarError(f"status must be 'unread' or 'read', not {status!r}.")
        while self._pull(0.0):
            pass
        return list(self._inbox if status == "unread" else self._read)

    def delete_messages(self, message_ids: list[str]) -> int:
        """Forget the messages with these ids; how many were forgotten."""
        doomed = set(message_ids)
        before = len(self._inbox) + len(self._read)
        self._inbox = [m for m in self._inbox if m.id not in doomed]
        self._read = [m for m in self._read if m.id not in doomed]
        return before - len(self._inbox) - len(self._read)

    def clear_messages(
        self,
        status: Literal["read", "unread", "all"] = "read",
        min_age: int | None = None,
    ) -> int:
        """Forget every message of a status (older than ``min_age`` seconds if given)."""
        if status not in ("read", "unread", "all"):
            raise StarError(f"status must be 'read', 'unread' or 'all', not {status!r}.")
        now = time.monotonic()

        def keep(message: Message) -> bool:
            arrived = self._received.get(message.id, now)
            return min_age is not None and now - arrived < min_age

        before = len(self._inbox) + len(self._read)
        if status in ("unread", "all"):
            self._inbox = [m for m in self._inbox if keep(m)]
        if status in ("read", "all"):
            self._read = [m for m in self._read if keep(m)]
        return before - len(self._inbox) - len(self._read)

    def send_message_and_wait_for_responses(
        self,
        receivers: list[str],
        message_category: str,
        message: Any,
        max_attempts: int = 1,
        timeout: int | None = None,
        attempt_timeout: int = 10,
    ) -> dict[str, list[Message] | None]:
        """Send ``message`` and wait for each receiver's answer of the same category."""
        self.send_message(receivers, message_category, message, max_attempts, timeout)
        return self.await_messages(receivers, message_category, timeout=timeout)

    def send_intermediate_data(
        self,
        receivers: list[str],
        data: Any,
        message_category: str = INTERMEDIATE_CATEGORY,
        max_attempts: int = 1,
        timeout: int | None = None,
        attempt_timeout: int = 10,
        encrypted: bool = False,
    ) -> tuple[list[str], list[str]]:
        """Send data to other nodes (the node encrypts it to each receiver's key)."""
        return self.send_message(receivers, message_category, data)

    def await_intermediate_data(
        self,
        senders: list[str],
        message_category: str = INTERMEDIATE_CATEGORY,
        timeout: int | None = None,
    ) -> dict[str, Any]:
        """The latest data each sender sent, or None for a sender that sent nothing."""
        messages = self.await_messages(senders, message_category, timeout=timeout)
        return {s: (found[-1].body if found else None) for s, found in messages.items()}

    # -- intermediate storage ------------------------------------------------------------
    def save_intermediate_data(
        self,
        data: Any,
        location: Literal["local", "global"],
        remote_node_ids: list[str] | None = None,
        tag: str | None = None,
    ) -> dict[str, dict[str, str]] | dict[str, str]:
        """Keep data at this node for the run (``'local'``, optionally tagged) or store it for
        other nodes (``'global'``: one id per receiver, fetched there with
        ``get_intermediate_data('global', query=id)``)."""
        if location not in ("local", "global"):
            raise StarError(f"location must be 'local' or 'global', not {location!r}.")
        if location == "global":
            if remote_node_ids is None:
                raise StarError(
                    "remote_node_ids must be provided when saving global intermediate data.",
                    hint="Pass the receivers, e.g. remote_node_ids=[flame.get_aggregator_id()].",
                )
            if tag:
                raise StarError("A tag can only be used with location='local'.")
            self._check_peers(remote_node_ids, "store data for")
            answer: dict[str, dict[str, str]] = {}
            for node in remote_node_ids:
                stored_id = self._new_id()
                acked, _ = self._runtime.send_message(
                    [node], STORAGE_CATEGORY, {"id": stored_id, "data": data}
                )
                answer[node] = {
                    "status": "success" if node in acked else "failed",
                    "url": f"intermediate/{stored_id}",
                    "id": stored_id,
                }
            return answer
        if tag is not None and not _TAG.match(tag):
            raise StarError(
                f"Invalid tag {tag!r}: a tag consists of lowercase letters, digits and hyphens.",
                hint="Use e.g. tag='round-1'.",
            )
        stored = _Stored(self._new_id(), data, tag)
        self._stored.append(stored)
        return {"status": "success", "url": f"local/{stored.id}", "id": stored.id}

    def get_intermediate_data(
        self,
        location: Literal["local", "global"],
        query: str | None = None,
        tag: str | None = None,
        tag_option: Literal["all", "last", "first"] | None = "all",
    ) -> Any:
        """Data saved with save_intermediate_data: by id (``query``) or, locally, by tag."""
        if location == "global":
            if query is None:
                raise StarError("Global intermediate data is fetched by its id (query=...).")
            return self._await_stored(query)
        if location != "local":
            raise StarError(f"location must be 'local' or 'global', not {location!r}.")
        if tag is not None:
            found = [s.data for s in self._stored if s.tag == tag]
            if tag_option == "last":
                return found[-1:]
            if tag_option == "first":
                return found[:1]
            return found
        if query is None:
            raise StarError("Local intermediate data is fetched by its id or its tag.")
        for stored in self._stored:
            if stored.id == query:
                return stored.data
        raise StarError(f"No local intermediate data has the id {query!r}.")

    def get_local_tags(self, filter: str | None = None) -> list[str]:
        """The tags of data saved locally (those containing ``filter``, if given)."""
        tags = list(dict.fromkeys(s.tag for s in self._stored if s.tag))
        return [t for t in tags if filter is None or filter in t]

    # -- results -------------------------------------------------------------------------
    def submit_final_result(
        self,
        result: Any,
        output_type: OutputType | list[OutputType] = "str",
        multiple_results: bool = False,
        filename: str | Sequence[str] | None = None,
        local_dp: LocalDP | dict[str, float] | None = None,
    ) -> dict[str, str]:
        """Release the final result (aggregator only); see flame_lab.star.results for types.

        The parameters keep flamesdk 0.6's order: ``filename`` before ``local_dp``.
        """
        if self.get_role() != "aggregator":
            raise StarError(
                f"Node {self.get_id()!r} is an analyzer; only the aggregator may submit the "
                "final result.",
                hint="Return the result from aggregation_method; StarModel submits it.",
            )
        submission = prepare_submission(
            result,
            output_type,
            multiple_results,
            local_dp,
            filename,
            rng=self._runtime.random_generator(),
            warn=lambda text: self.flame_log(text, log_type=_WARNING),
            noise=not getattr(self._runtime, "adds_dp_noise", False),
        )
        return self._runtime.submit_final_result(submission)

    # -- data ----------------------------------------------------------------------------
    def get_data_sources(self) -> list[str] | None:
        return self._runtime.get_data_sources()

    def get_data_client(self, data_id: str) -> None:
        """FLAME hands data nodes an HTTP client to a data store; flame_lab nodes give their
        data only through get_fhir_data / get_s3_data, so this is None, with a warning."""
        self.flame_log(
            "Data API is not available, cannot retrieve data client (use get_fhir_data or "
            "get_s3_data)",
            log_type=_WARNING,
        )

    def get_fhir_data(self, fhir_queries: list[str] | None = None) -> list[dict[str, Any]] | None:
        return self._runtime.get_fhir_data(list(fhir_queries or []))

    def get_s3_data(self, s3_keys: list[str] | None = None) -> list[dict[str, bytes]] | None:
        return self._runtime.get_s3_data(list(s3_keys or []))

    # -- internals -----------------------------------------------------------------------
    def _new_id(self) -> str:
        return f"{self.get_id()}-{next(self._ids)}"

    def _pull(self, timeout: float | None) -> bool:
        """Take one incoming message into the inbox; False when none came in time."""
        incoming = self._runtime.receive_message(timeout)
        if incoming is None:
            if timeout is None:  # a wait without end came back empty: the run was ended
                raise StarError(
                    "This node's run ended while it waited for messages (another node failed "
                    "or the run was stopped).",
                    hint="The other nodes' logs say why.",
                )
            return False
        self._received[incoming.id] = time.monotonic()
        if incoming.category == FINISHED_CATEGORY:
            self._finished = True
        elif incoming.category == STORAGE_CATEGORY:
            body = incoming.body if isinstance(incoming.body, dict) else {}
            self._stored_global[str(body.get("id"))] = body.get("data")
        else:
            self._inbox.append(incoming)
        return True

    def _await_stored(self, stored_id: str) -> Any:
        while stored_id not in self._stored_global:
            if self._finished or not self._pull(None):
                raise StarError(
                    f"No intermediate data with the id {stored_id!r} reached this node.",
                    hint="Use the id that save_intermediate_data returned for this node.",
                )
        return self._stored_global.pop(stored_id)

    def _check_peers(self, nodes: Any, verb: str) -> None:
        if not isinstance(nodes, list | tuple):
            raise StarError(
                f"Node ids must be given as a list, not {type(nodes).__name__}.",
                hint="Pass e.g. [self.flame.get_aggregator_id()].",
            )
        unknown = [n for n in nodes if n not in self.get_participant_ids()]
        if unknown:
            raise StarError(
                f"Cannot {verb} {unknown}: not another node of this analysis.",
                hint="Use ids from self.flame.get_participant_ids().",
            )

    def _matches(
        self, message: Message, sender: str, category: str, message_id: str | None
    ) -> bool:
        return (
            message.sender == sender
            and message.category == category
            and (message_id is None or message.id == message_id)
        )

    def _has(self, sender: str, category: str, message_id: str | None) -> bool:
        return any(self._matches(m, sender, category, message_id) for m in self._inbox)

    def _take(
        self, senders: list[str], category: str, message_id: str | None
    ) -> dict[str, list[Message] | None]:
        taken: dict[str, list[Message] | None] = {}
        for sender in senders:
            found = [m for m in self._inbox if self._matches(m, sender, category, message_id)]
            taken[sender] = found or None
        consumed = {id(m) for found in taken.values() if found for m in found}
        self._read.extend(m for m in self._inbox if id(m) in consumed)
        self._inbox = [m for m in self._inbox if id(m) not in consumed]
        return taken
