"""The lower-level calls analysis code may use (FLAME's ``FlameCoreSDK``), over a Runtime.

The same names and arguments as PrivateAIM's SDK, so that code calling ``self.flame.<method>``
runs unchanged on real FLAME nodes. Message matching, the ``analysis_finished`` signal and
intermediate-data conventions live here once, so each Runtime is only a mailbox.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

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
_WARNING = "warning"


class FlameCoreSDK:
    """flame_lab's stand-in for ``flamesdk.FlameCoreSDK``, bound to the current Runtime."""

    def __init__(self, runtime: Runtime | None = None) -> None:
        self._runtime = runtime if runtime is not None else require_runtime()
        self._inbox: list[Message] = []
        self._finished = False
        self._log_types: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<FlameCoreSDK node={self.get_id()!r} role={self.get_role()!r}>"

    @property
    def runtime(self) -> Runtime:
        """The runtime this SDK talks to (tester, sandbox node, ...)."""
        return self._runtime

    @property
    def finished(self) -> bool:
        """True once this node finished or heard ``analysis_finished`` from the aggregator."""
        return self._finished

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

    def flame_log(
        self,
        msg: str | bytes,
        sep: str = " ",
        end: str = "\n",
        file: object = None,
        log_type: str = "normal",
        suppress_head: bool = False,
        halt_submission: bool = False,
    ) -> None:
        """Log one message on this node (the SDK's signature; layout arguments are ignored)."""
        text = msg.decode("utf-8", errors="replace") if isinstance(msg, bytes) else str(msg)
        self._runtime.flame_log(text, self._log_types.get(log_type, log_type))

    def declare_log_types(self, new_log_types: dict[str, str]) -> None:
        """Add custom log types, each mapped to a known one (info, warning, error, ...)."""
        self._log_types.update(new_log_types)

    def get_progress(self) -> int:
        return self._runtime.get_progress()

    def set_progress(self, progress: int | float) -> None:
        """Report progress; like the SDK, ignore (with a warning) invalid or backward steps."""
        value = int(progress)
        if not 0 <= value <= 100:
            self.flame_log(f"Invalid progress: {progress} (must be 0..100).", log_type=_WARNING)
        elif value <= self.get_progress():
            self.flame_log(
                f"Progress must increase (now {self.get_progress()}, given {value}).",
                log_type=_WARNING,
            )
        else:
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
            incoming = self._runtime.receive_message(remaining)
            if incoming is None:
                break
            if incoming.category == FINISHED_CATEGORY:
                self._finished = True
            else:
                self._inbox.append(incoming)
        return self._take(senders, message_category, message_id)

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

    # -- results -------------------------------------------------------------------------
    def submit_final_result(
        self,
        result: Any,
        output_type: OutputType | list[OutputType] = "str",
        multiple_results: bool = False,
        local_dp: LocalDP | dict[str, float] | None = None,
        filename: str | Sequence[str] | None = None,
    ) -> dict[str, str]:
        """Release the final result (aggregator only); see flame_lab.star.results for types."""
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
        )
        return self._runtime.submit_final_result(submission)

    # -- data ----------------------------------------------------------------------------
    def get_data_sources(self) -> list[str] | None:
        return self._runtime.get_data_sources()

    def get_fhir_data(self, fhir_queries: list[str] | None = None) -> list[dict[str, Any]] | None:
        return self._runtime.get_fhir_data(list(fhir_queries or []))

    def get_s3_data(self, s3_keys: list[str] | None = None) -> list[dict[str, bytes]] | None:
        return self._runtime.get_s3_data(list(s3_keys or []))

    # -- internals -----------------------------------------------------------------------
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
        self._inbox = [m for m in self._inbox if id(m) not in consumed]
        return taken
