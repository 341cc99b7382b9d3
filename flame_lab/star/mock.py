"""``StarModel(test_mode=True, test_kwargs=...)``: one node of an in-process federation.

FLAME's patterns package runs each node of a local test as a StarModel in test mode, with the
node's id, role, partners and data in ``test_kwargs``; this is flame_lab's counterpart of its
``flame.utils.mock_flame_core.MockFlameCoreSDK``. Nodes whose ids belong to one analysis meet
in one shared :class:`InProcessFederation`, created by the first of them and dropped when the
last one is done. StarModelTester does the same with less ceremony.
"""

from __future__ import annotations

import threading
from typing import Any

from flame_lab.errors import StarError
from flame_lab.star.core import FlameCoreSDK
from flame_lab.star.inprocess import Aborted, InProcessFederation, InProcessRuntime, NodeSpec

REQUIRED_KWARGS = ("node_id", "aggregator_id", "role", "participants")

_lock = threading.Lock()
_federations: dict[frozenset[str], InProcessFederation] = {}


def _participants(test_kwargs: dict[str, Any]) -> dict[str, str]:
    """{node id: role} of the other nodes ({'id','role'} or the hub's {'nodeId','nodeType'})."""
    out = {}
    for entry in test_kwargs["participants"]:
        if not isinstance(entry, dict):
            raise StarError(f"A participant is a dict with 'id' and 'role', not {entry!r}.")
        node = entry.get("id", entry.get("nodeId"))
        role = entry.get("role", entry.get("nodeType", "default"))
        out[str(node)] = str(role)
    return out


def check_test_kwargs(test_kwargs: Any) -> None:
    """Refuse test_kwargs that FLAME's mock would refuse, saying what is missing."""
    if not isinstance(test_kwargs, dict):
        raise StarError(
            "test_mode=True needs test_kwargs, a dict describing this node.",
            hint="Give node_id, aggregator_id, role, participants and fhir_data or s3_data.",
        )
    missing = [k for k in REQUIRED_KWARGS if k not in test_kwargs]
    if missing:
        raise StarError(
            "test_kwargs must include 'node_id', 'aggregator_id', 'role' and 'participants'; "
            "missing: " + ", ".join(missing) + ".",
        )
    if "fhir_data" not in test_kwargs and "s3_data" not in test_kwargs:
        raise StarError(
            "test_kwargs must include either 'fhir_data' or 's3_data' (None on the aggregator).",
        )


class MockFlameCoreSDK(FlameCoreSDK):
    """A FlameCoreSDK for one node of a local test, set up from ``test_kwargs``."""

    final_results_storage: Any = None

    def __init__(self, test_kwargs: dict[str, Any]) -> None:
        check_test_kwargs(test_kwargs)
        node_id = str(test_kwargs["node_id"])
        data_type = "fhir" if "fhir_data" in test_kwargs else "s3"
        others = _participants(test_kwargs)
        ids = frozenset([node_id, *others])
        with _lock:
            federation = _federations.get(ids)
            if federation is None:
                roles = {**others, node_id: str(test_kwargs["role"])}
                specs = [NodeSpec(n, roles[n]) for n in sorted(ids)]  # type: ignore[arg-type]
                federation = InProcessFederation(
                    specs,
                    data_type=data_type,
                    analysis_id=str(test_kwargs.get("analysis_id", "analysis_id")),
                    project_id=str(test_kwargs.get("project_id", "project_id")),
                )
                if federation.aggregator_id != str(test_kwargs["aggregator_id"]):
                    raise StarError(
                        f"aggregator_id {test_kwargs['aggregator_id']!r} is not the node whose "
                        f"role is 'aggregator' ({federation.aggregator_id!r}).",
                    )
                _federations[ids] = federation
        federation.set_data(node_id, test_kwargs.get(f"{data_type}_data"))
        self._federation = federation
        self._ids_key = ids
        self._test_kwargs = test_kwargs
        super().__init__(runtime=InProcessRuntime(federation, federation.nodes[node_id]))

    def submit_final_result(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        answer = super().submit_final_result(*args, **kwargs)
        submission = self._federation.submission
        if submission is not None:
            self.final_results_storage = submission.values
        return answer

    def _mock_done(self, failure: BaseException | None = None) -> None:
        """Called by StarModel when this node's part is over (``failure`` if it raised)."""
        federation = self._federation
        if failure is not None and not isinstance(failure, Aborted):
            federation.node_failed(self.get_id(), failure)
        federation.node_done(self.get_id())
        if not federation.still_running():
            with _lock:
                if _federations.get(self._ids_key) is federation:
                    del _federations[self._ids_key]
