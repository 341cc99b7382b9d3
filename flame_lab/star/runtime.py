"""The seam between flame.star code and whatever hosts it (tester, sandbox node, ...).

Analysis code never learns where it runs: ``StarModel`` and ``FlameCoreSDK`` ask
:func:`current_runtime` for a :class:`Runtime` and call only the methods below.

How the current runtime is found, first match wins:

1. a runtime bound to the current thread/context with :func:`use_runtime` (the in-process
   ``StarModelTester`` binds one per simulated node thread);
2. a runtime installed for the whole process with :func:`install_runtime` (a node runner that
   holds a runtime object before it executes the entrypoint);
3. the environment variable ``FLAME_LAB_RUNTIME`` = ``"<scheme>:<address>"`` (for example
   ``unix:/run/flame-lab/agent.sock`` or ``fd:3``), resolved by the connector registered for
   ``<scheme>`` with :func:`register_connector`. The connection is opened once per process and
   cached. Only the scheme ever appears in error messages: the address may carry a token.

What a node agent's runtime must implement (the sandbox node runner, talking over its own
socket or pipe to the agent), beyond the obvious getters:

- ``send_message``/``receive_message`` are a plain mailbox: deliver ``body`` to each receiver
  and hand this node its incoming :class:`Message` objects in arrival order. Matching by
  sender/category, the ``analysis_finished`` signal and intermediate-data conventions are
  done once, in ``flame_lab.star.core``. Bodies are Python values (numbers, str, bytes,
  lists, dicts, NumPy arrays); the agent encodes them without pickle and, between nodes,
  encrypts them to the receiver's node key.
- ``submit_final_result`` gets a :class:`FinalSubmission`: Python objects already converted
  per ``output_type`` (``'str'`` -> ``str``, ``'bytes'`` -> ``bytes``, ``'pickle'`` -> the
  object itself, which the node encodes with ``flame_lab.security.payload``: JSON, ``.npy``
  or tables, never pickle). With ``multiple_results`` each entry is released separately.
  If ``local_dp`` is set and the runtime says ``adds_dp_noise = True`` (a node), the value is
  the exact number and the node adds the noise with its own parameters (OpenDP), charges the
  epsilon it used and may refuse (raise ``PolicyRefused``), as FLAME's node services do.
  Otherwise (the in-process tester) flame_lab.star has already added the noise. A runtime
  may also offer ``declare_local_dp(epsilon, sensitivity)``: StarLocalDPModel calls it on
  every node first, so data nodes that noise their own releases know.
- ``random_generator`` returns ``None`` on a real node (noise then uses fresh OS entropy);
  the tester may return a seeded generator so tests are reproducible.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from flame_lab.errors import NoStarRuntime, StarError

if TYPE_CHECKING:
    import numpy as np

RUNTIME_ENV = "FLAME_LAB_RUNTIME"

Role = Literal["default", "aggregator"]
OutputType = Literal["str", "bytes", "pickle"]
OUTPUT_TYPES: tuple[str, ...] = ("str", "bytes", "pickle")


@dataclass(frozen=True)
class Message:
    """One message delivered to a node: who sent it, its category and its body."""

    sender: str
    category: str
    body: Any
    id: str = ""


@dataclass(frozen=True)
class LocalDP:
    """Local differential privacy applied to a final result (noise already added)."""

    epsilon: float
    sensitivity: float

    @property
    def scale(self) -> float:
        """The Laplace scale b = sensitivity / epsilon."""
        return self.sensitivity / self.epsilon


@dataclass(frozen=True)
class ReleasedResult:
    """One final result as the node must release it."""

    value: Any
    output_type: OutputType
    filename: str | None = None


@dataclass(frozen=True)
class FinalSubmission:
    """Everything an aggregator hands its node when it submits the final result."""

    results: tuple[ReleasedResult, ...]
    multiple_results: bool = False
    local_dp: LocalDP | None = None

    @property
    def values(self) -> Any:
        """The released value, or the list of values when there are several."""
        if self.multiple_results:
            return [r.value for r in self.results]
        return self.results[0].value


@runtime_checkable
class Runtime(Protocol):
    """What flame.star needs from its host; see the module docstring for the contract."""

    def get_id(self) -> str:
        """This node's id."""
        ...

    def get_role(self) -> Role:
        """``'default'`` (analyzer, holds data) or ``'aggregator'``."""
        ...

    def get_participant_ids(self) -> list[str]:
        """Ids of every other node of the analysis (never this node's own id)."""
        ...

    def get_aggregator_id(self) -> str:
        """Id of the aggregator node."""
        ...

    def get_analysis_id(self) -> str: ...

    def get_project_id(self) -> str: ...

    def get_data_sources(self) -> list[str]:
        """Names of the data sources this node offers the analysis (empty on aggregators)."""
        ...

    def get_fhir_data(self, queries: list[str]) -> list[dict[str, Any]] | None:
        """One dict {query: FHIR Bundle dict} per data source; all queries' data if empty."""
        ...

    def get_s3_data(self, keys: list[str]) -> list[dict[str, bytes]] | None:
        """One dict {object key: bytes} per data source; every object if ``keys`` is empty."""
        ...

    def flame_log(self, message: str, log_type: str) -> None:
        """Record one log line (log_type as the SDK names it: info, warning, error, ...)."""
        ...

    def set_progress(self, progress: int) -> None:
        """Report progress 0..100 (already validated and monotonic)."""
        ...

    def get_progress(self) -> int: ...

    def send_message(
        self, receivers: Sequence[str], category: str, body: Any
    ) -> tuple[list[str], list[str]]:
        """Deliver ``body``; returns (acknowledged ids, not acknowledged ids)."""
        ...

    def receive_message(self, timeout: float | None) -> Message | None:
        """Next message for this node in arrival order; None once ``timeout`` s passed."""
        ...

    def submit_final_result(self, submission: FinalSubmission) -> dict[str, str]:
        """Release the final result(s); only called on the aggregator."""
        ...

    def random_generator(self) -> np.random.Generator | None:
        """Generator for local-DP noise, or None for fresh OS entropy (real nodes)."""
        ...


Connector = Callable[[str], Runtime]

_BOUND: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar(
    "flame_lab_star_runtime", default=None
)
_lock = threading.Lock()
_installed: Runtime | None = None
_connected: tuple[str, Runtime] | None = None
_CONNECTORS: dict[str, Connector] = {}


@contextlib.contextmanager
def use_runtime(runtime: Runtime) -> Iterator[Runtime]:
    """Bind ``runtime`` to the current thread (context) for the duration of the block."""
    token = _BOUND.set(runtime)
    try:
        yield runtime
    finally:
        _BOUND.reset(token)


def install_runtime(runtime: Runtime | None) -> None:
    """Set (or with None clear) the runtime of the whole process, e.g. in a node runner."""
    global _installed, _connected
    with _lock:
        _installed = runtime
        if runtime is None:
            _connected = None


def register_connector(scheme: str, factory: Connector) -> None:
    """Let ``FLAME_LAB_RUNTIME=<scheme>:<address>`` open a runtime with ``factory(address)``."""
    if not scheme or ":" in scheme:
        raise StarError(f"Invalid runtime connector scheme {scheme!r}.", hint="Use a bare name.")
    _CONNECTORS[scheme] = factory


def current_runtime() -> Runtime | None:
    """The runtime hosting this code, or None when nothing hosts it."""
    bound = _BOUND.get()
    if bound is not None:
        return bound
    if _installed is not None:
        return _installed
    spec = os.environ.get(RUNTIME_ENV, "").strip()
    if not spec:
        return None
    return _connect(spec)


def require_runtime() -> Runtime:
    """The current runtime, or a clear error saying how to run flame.star code."""
    runtime = current_runtime()
    if runtime is None:
        raise NoStarRuntime(
            "This flame.star analysis has no FLAME node to run on: StarModel only works on a "
            "FLAME node, in the sandbox, or under StarModelTester."
        )
    return runtime


def _connect(spec: str) -> Runtime:
    global _connected
    scheme, sep, address = spec.partition(":")
    with _lock:
        if _connected is not None and _connected[0] == spec:
            return _connected[1]
        factory = _CONNECTORS.get(scheme) if sep else None
        if factory is None:
            raise StarError(
                f"{RUNTIME_ENV} names a runtime of kind {scheme!r} that this process "
                "cannot connect to.",
                hint="The node runner must call flame_lab.star.register_connector() for that "
                "kind before it runs the analysis code.",
            )
        runtime = factory(address)
        _connected = (spec, runtime)
        return runtime
