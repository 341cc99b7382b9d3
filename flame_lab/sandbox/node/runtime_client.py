"""The analysis process's side of the node runtime: flame.star calls become RPC calls.

Inside the confined analysis process, :class:`AgentRuntime` implements
:class:`flame_lab.star.runtime.Runtime` by calling the node agent's
:class:`~flame_lab.sandbox.node.service.NodeService` over the inherited socket. Values cross
the channel as JSON with a few tagged forms (bytes, tuples, dicts with non-text keys, NumPy
arrays and DataFrames via flame_lab.security.payload).

Anything else an analysis sends (a fitted model, a set) is pickled **inside the analysis
process**, as real FLAME pickles intermediate data, and travels as ``{"$pickle": bytes}``:
the node agent carries it as an opaque :class:`~flame_lab.security.payload.OpaquePickle` and
never loads it; only the receiving analysis process unpickles (``from_channel(...,
unpickle=True)``), which runs the same researcher's code, confined. A data node's disclosure
check cannot look inside such a value.
"""

from __future__ import annotations

import collections
import pickle
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flame_lab import errors
from flame_lab.errors import FlameLabError, PayloadError
from flame_lab.sandbox.node.ipc import Channel, RemoteError, RpcClient
from flame_lab.security import payload
from flame_lab.star.runtime import FinalSubmission, LocalDP, Message, ReleasedResult, Role

if TYPE_CHECKING:
    import numpy as np

MAX_DEPTH = 128
_TAGS = ("$b64", "$tuple", "$dict", "$payload", "$pickle")
CHANNEL_TYPES = (
    "None, bool, int, float, str, bytes, list, tuple, dict, NumPy scalars and arrays "
    "(not of object dtype) and pandas DataFrames"
)


# -- values across the channel ---------------------------------------------------------------
def _refused(what: str) -> PayloadError:
    return PayloadError(
        f"A value sent between the analysis and its node cannot hold {what}.",
        hint=f"Use {CHANNEL_TYPES}.",
    )


Dumps = Callable[[Any], bytes]
Loads = Callable[[bytes], Any]


def _pickled(value: Any, dumps: Dumps | None = None) -> dict[str, bytes]:
    try:
        return {"$pickle": (dumps or pickle.dumps)(value)}
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise PayloadError(
            f"A {type(value).__name__} cannot travel between FLAME nodes: pickling it failed "
            f"({exc}).",
            hint="Send plain data (numbers, lists, dicts, arrays, frames, fitted models); not "
            "open files, locks, generators or functions defined inside other functions.",
        ) from None


def to_channel(
    value: Any, _depth: int = 0, *, pickle_unknown: bool = False, dumps: Dumps | None = None
) -> Any:
    """A JSON-able form of ``value`` (bytes stay bytes: the channel carries them).

    ``pickle_unknown`` (the analysis side only) pickles each value of another type, as FLAME
    does (with ``dumps`` if given); without it such a value is refused. An OpaquePickle
    always travels as it is.
    """
    if _depth > MAX_DEPTH:
        raise _refused(f"values nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, payload.OpaquePickle):
        return {"$pickle": value.data}
    if _is_numpy_scalar(value):
        return value.item()
    deeper = _depth + 1
    if isinstance(value, tuple):
        return {
            "$tuple": [
                to_channel(v, deeper, pickle_unknown=pickle_unknown, dumps=dumps) for v in value
            ]
        }
    if isinstance(value, list):
        return [to_channel(v, deeper, pickle_unknown=pickle_unknown, dumps=dumps) for v in value]
    if isinstance(value, dict) and type(value) in (dict, collections.OrderedDict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {
                k: to_channel(v, deeper, pickle_unknown=pickle_unknown, dumps=dumps)
                for k, v in value.items()
            }
        return {
            "$dict": [
                [
                    to_channel(k, deeper, pickle_unknown=pickle_unknown, dumps=dumps),
                    to_channel(v, deeper, pickle_unknown=pickle_unknown, dumps=dumps),
                ]
                for k, v in value.items()
            ]
        }
    if _is_array_or_frame(value):
        try:
            data, content_type = payload.encode(value)
        except PayloadError:
            if not pickle_unknown:
                raise
            return _pickled(value, dumps)
        return {"$payload": {"type": content_type, "data": data}}
    if pickle_unknown:
        return _pickled(value, dumps)
    raise _refused(f"a value of type {type(value).__name__}")


def from_channel(
    value: Any, _depth: int = 0, *, unpickle: bool = False, loads: Loads | None = None
) -> Any:
    """The Python value of a channel form; refuses any tag it does not know.

    A pickled value stays an OpaquePickle unless ``unpickle`` (only ever in the analysis
    process, never in the node agent).
    """
    if _depth > MAX_DEPTH:
        raise _refused(f"values nested deeper than {MAX_DEPTH} levels")
    deeper = _depth + 1
    if isinstance(value, list):
        return [from_channel(v, deeper, unpickle=unpickle, loads=loads) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)).startswith("$"):
        tag, inner = next(iter(value.items()))
        if tag == "$pickle" and isinstance(inner, bytes):
            if not unpickle:
                return payload.OpaquePickle(inner)
            # the analysis process, running the researcher's own code: as on FLAME
            return (loads or pickle.loads)(inner)
        if tag == "$tuple" and isinstance(inner, list):
            return tuple(from_channel(v, deeper, unpickle=unpickle, loads=loads) for v in inner)
        if tag == "$dict" and isinstance(inner, list):
            if not all(isinstance(p, list) and len(p) == 2 for p in inner):
                raise _refused("a malformed $dict")
            out = {}
            for key, item in inner:
                key = from_channel(key, deeper, unpickle=unpickle, loads=loads)
                if isinstance(key, list | dict):
                    raise _refused(f"a dict key of type {type(key).__name__}")
                out[key] = from_channel(item, deeper, unpickle=unpickle, loads=loads)
            return out
        if tag == "$payload" and isinstance(inner, dict):
            data, content_type = inner.get("data"), inner.get("type")
            if not isinstance(data, bytes) or content_type not in (payload.NPY, *_TABLES):
                raise _refused("a malformed $payload")
            return payload.decode(data, content_type)
        raise _refused(f"the unknown tag {tag!r}")
    return {k: from_channel(v, deeper, unpickle=unpickle, loads=loads) for k, v in value.items()}


_TABLES = (payload.PARQUET, payload.CSV)


def _is_numpy_scalar(value: Any) -> bool:
    module = type(value).__module__ or ""
    if not module.startswith("numpy"):
        return False
    import numpy as np

    return isinstance(value, np.generic) and not isinstance(value, np.object_ | np.void)


def _is_array_or_frame(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith(("numpy", "pandas")) and type(value).__name__ in (
        "ndarray",
        "DataFrame",
    )


def _result_to_channel(value: Any, output_type: str) -> Any:
    """A released value for the channel: a 'pickle' result the node cannot encode as a
    payload (JSON, .npy, table) is pickled whole, here in the analysis process, as FLAME's
    SDK pickles it; the node seals those bytes without loading them."""
    if output_type == "pickle" and not isinstance(value, bytes | str):
        try:
            payload.encode(value)
        except PayloadError:
            return _pickled(value)
    return to_channel(value)


def submission_to_channel(submission: FinalSubmission) -> dict[str, Any]:
    """A FinalSubmission as a channel value."""
    dp = submission.local_dp
    return {
        "results": [
            {
                "value": _result_to_channel(r.value, r.output_type),
                "output_type": r.output_type,
                "filename": r.filename,
            }
            for r in submission.results
        ],
        "multiple_results": bool(submission.multiple_results),
        "local_dp": None if dp is None else {"epsilon": dp.epsilon, "sensitivity": dp.sensitivity},
    }


def submission_from_channel(value: Any) -> FinalSubmission:
    """Rebuild a FinalSubmission sent by an (untrusted) analysis, checking its shape."""
    bad = PayloadError(
        "The analysis sent a final result the node cannot read.",
        hint="Submit results through flame.star (StarModel or submit_final_result).",
    )
    if not isinstance(value, dict) or not isinstance(value.get("results"), list):
        raise bad
    results = []
    for item in value["results"]:
        if not isinstance(item, dict) or item.get("output_type") not in ("str", "bytes", "pickle"):
            raise bad
        filename = item.get("filename")
        if filename is not None and not isinstance(filename, str):
            raise bad
        results.append(
            ReleasedResult(from_channel(item.get("value")), item["output_type"], filename)
        )
    if not results:
        raise bad
    dp = value.get("local_dp")
    local_dp = None
    if dp is not None:
        if not isinstance(dp, dict):
            raise bad
        eps, sens = dp.get("epsilon"), dp.get("sensitivity")
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (eps, sens)):
            raise bad
        local_dp = LocalDP(float(eps), float(sens))
    return FinalSubmission(tuple(results), bool(value.get("multiple_results")), local_dp)


# -- the runtime -------------------------------------------------------------------------------
def _error_class(kind: str) -> type[FlameLabError] | None:
    found = getattr(errors, kind, None)
    if isinstance(found, type) and issubclass(found, FlameLabError):
        return found
    return None


class AgentRuntime:
    """flame.star's Runtime inside an analysis process: every call asks the node agent."""

    adds_dp_noise = True  # the node, not this process, adds local-DP noise

    def __init__(self, client: RpcClient) -> None:
        self._client = client
        self._facts: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return "<AgentRuntime>"

    def _call(self, method: str, **params: Any) -> Any:
        """One RPC call; the node's flame_lab errors come back as the same class."""
        try:
            return self._client.call(method, **params)
        except RemoteError as exc:
            cls = _error_class(exc.kind)
            if cls is None or cls is RemoteError:
                raise
            try:
                error = cls(exc.message, hint=exc.hint)
            except TypeError:
                raise exc from None
            raise error from None

    def _fact(self, name: str) -> Any:
        if self._facts is None:
            self._facts = self._call("hello")
        return self._facts[name]

    def get_id(self) -> str:
        return self._fact("node_id")

    def get_role(self) -> Role:
        return self._fact("role")

    def get_participant_ids(self) -> list[str]:
        return list(self._fact("participant_ids"))

    def get_aggregator_id(self) -> str:
        return self._fact("aggregator_id")

    def get_analysis_id(self) -> str:
        return self._fact("analysis_id")

    def get_project_id(self) -> str:
        return self._fact("project_id")

    def get_data_sources(self) -> list[str]:
        return list(self._fact("data_sources"))

    def get_fhir_data(self, queries: list[str]) -> list[dict[str, Any]] | None:
        return self._call("get_fhir_data", queries=list(queries))

    def get_s3_data(self, keys: list[str]) -> list[dict[str, bytes]] | None:
        return self._call("get_s3_data", keys=list(keys))

    def flame_log(self, message: str, log_type: str) -> None:
        self._call("log", message=str(message), log_type=str(log_type))

    def set_progress(self, progress: int) -> None:
        self._call("set_progress", progress=int(progress))

    def declare_local_dp(self, epsilon: float, sensitivity: float) -> None:
        self._call("declare_local_dp", epsilon=float(epsilon), sensitivity=float(sensitivity))

    def get_progress(self) -> int:
        return int(self._call("get_progress"))

    def send_message(
        self, receivers: Sequence[str], category: str, body: Any
    ) -> tuple[list[str], list[str]]:
        acked, not_acked = self._call(
            "send_message",
            receivers=list(receivers),
            category=category,
            body=to_channel(body, pickle_unknown=True),
        )
        return list(acked), list(not_acked)

    def receive_message(self, timeout: float | None) -> Message | None:
        found = self._call("receive_message", timeout=timeout)
        if found is None:
            return None
        body = from_channel(found["body"], unpickle=True)
        return Message(found["sender"], found["category"], body, found["id"])

    def submit_final_result(self, submission: FinalSubmission) -> dict[str, str]:
        return self._call("submit_final_result", submission=submission_to_channel(submission))

    def random_generator(self) -> np.random.Generator | None:
        return None


def connect_fd(address: str) -> AgentRuntime:
    """The connector for ``FLAME_LAB_RUNTIME=fd:<n>``: a socket inherited from the agent."""
    try:
        fd = int(address)
    except ValueError:
        raise errors.StarError(
            "The node gave this analysis an unusable runtime channel.",
            hint="This is a problem of the node, not of the analysis; tell its admin.",
        ) from None
    return AgentRuntime(RpcClient(Channel(socket.socket(fileno=fd))))
