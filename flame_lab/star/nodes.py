"""The classes researchers subclass: StarAnalyzer (runs at data nodes) and StarAggregator.

Same attributes and call order as FLAME's SDK: ``id, role, latest_result, num_iterations,
partner_node_ids, finished, flame``; constructors take ``(flame, **kwargs)`` and call
``super().__init__(flame)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from flame_lab.errors import StarError
from flame_lab.star.core import FlameCoreSDK


class StarNode:
    """What analyzers and aggregators share: identity, partners and round bookkeeping."""

    def __init__(self, flame: FlameCoreSDK) -> None:
        self.flame = flame
        self.id: str = flame.get_id()
        self.role: str = flame.get_role()
        self.finished = False
        self.latest_result: Any = None
        self.partner_node_ids: list[str] = flame.get_participant_ids()
        self.num_iterations: int = 0

    def node_finished(self) -> None:
        self.finished = True

    def set_num_iterations(self, num_iterations: int) -> None:
        self.num_iterations = num_iterations

    def set_latest_result(self, latest_result: Any) -> None:
        self.latest_result = latest_result


def _require_role(node: StarNode, expected: str, kind: str) -> None:
    if node.role != expected:
        raise StarError(
            f"A {kind} was started on node {node.id!r}, whose role is {node.role!r}.",
            hint="Let StarModel create the analyzer and aggregator; do not construct them by hand.",
        )


class StarAnalyzer(StarNode, ABC):
    """Runs ``analysis_method`` on the node's data, once per round."""

    def __init__(self, flame: FlameCoreSDK) -> None:
        super().__init__(flame)
        _require_role(self, "default", "StarAnalyzer")

    def analyze(self, data: Any) -> Any:
        """One round: the user's analysis_method on the data and the aggregator's last result."""
        result = self.analysis_method(data, self.latest_result)
        self.latest_result = result
        self.num_iterations += 1
        return result

    @abstractmethod
    def analysis_method(self, data: Any, aggregator_results: Any) -> Any:
        """Analyse ``data`` (one entry per data source); aggregator_results is None at first."""


class StarAggregator(StarNode, ABC):
    """Combines the analyzers' results each round and decides when the loop has converged."""

    #: What has_converged answered for the latest round (FLAME's ``delta_criteria``).
    delta_criteria: Any = False

    def __init__(self, flame: FlameCoreSDK) -> None:
        super().__init__(flame)
        _require_role(self, "aggregator", "StarAggregator")

    def aggregate(self, node_results: list[Any], simple_analysis: bool = True) -> tuple[Any, bool]:
        """One round, as FLAME runs it: has_converged is asked every round, the first included
        (``last_result`` is then None); an iterative analysis never stops after round one."""
        result = self.aggregation_method(node_results)
        self.delta_criteria = self.has_converged(result, self.latest_result)
        if simple_analysis:
            converged = True
        else:
            converged = bool(self.delta_criteria) if self.num_iterations != 0 else False
        self.latest_result = result
        self.num_iterations += 1
        return result, converged

    @abstractmethod
    def aggregation_method(self, analysis_results: list[Any]) -> Any:
        """Combine one result per analyzer (in partner order) into the aggregated result."""

    @abstractmethod
    def has_converged(self, result: Any, last_result: Any) -> bool:
        """True to stop an iterative analysis (simple_analysis=False) after this round."""
