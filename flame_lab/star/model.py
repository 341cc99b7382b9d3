"""StarModel: the entrypoint of a FLAME star analysis; the node's role decides what runs.

Analyzer nodes load their data, analyse, send to the aggregator and (iterative analyses)
wait for its result; the aggregator collects, aggregates and either sends its result back
for another round or submits the final result and tells every node the analysis is over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flame_lab.errors import StarError
from flame_lab.star.core import FlameCoreSDK
from flame_lab.star.nodes import StarAggregator, StarAnalyzer
from flame_lab.star.results import check_local_dp, check_output_type
from flame_lab.star.runtime import LocalDP, OutputType

DATA_TYPES = ("fhir", "s3")


class StarModel:
    """Run this analysis on the current node (FLAME's ``flame.star.StarModel``)."""

    flame: FlameCoreSDK
    data: list[Any] | None = None
    analyzer: StarAnalyzer | None = None
    aggregator: StarAggregator | None = None
    test_mode: bool = False
    test_kwargs: dict[str, Any] | None = None

    def __init__(
        self,
        analyzer: type[StarAnalyzer],
        aggregator: type[StarAggregator],
        data_type: str,
        query: str | list[str] | None = None,
        simple_analysis: bool = True,
        output_type: OutputType | list[OutputType] = "str",
        multiple_results: bool = False,
        analyzer_kwargs: dict[str, Any] | None = None,
        aggregator_kwargs: dict[str, Any] | None = None,
        test_mode: bool = False,
        test_kwargs: dict[str, Any] | None = None,
        *,
        filename: str | Sequence[str] | None = None,
        stream_log_level: int = 20,
    ) -> None:
        _check_classes(analyzer, aggregator)
        if data_type not in DATA_TYPES:
            raise StarError(
                f"Unknown data_type {data_type!r}.", hint="Use data_type='fhir' or 's3'."
            )
        check_output_type(output_type, multiple_results)
        self.test_mode = bool(test_mode)
        if self.test_mode:
            from flame_lab.star.mock import MockFlameCoreSDK

            self.test_kwargs = test_kwargs
            self.flame = MockFlameCoreSDK(test_kwargs=test_kwargs)
        else:
            self.test_kwargs = None
            self.flame = FlameCoreSDK()
        failure: BaseException | None = None
        try:
            self._run(
                analyzer,
                aggregator,
                data_type,
                query,
                simple_analysis,
                output_type,
                multiple_results,
                analyzer_kwargs,
                aggregator_kwargs,
                filename,
            )
        except BaseException as error:
            failure = error
            raise
        finally:
            done = getattr(self.flame, "_mock_done", None)
            if done is not None:
                done(failure)

    def _run(
        self,
        analyzer: type[StarAnalyzer],
        aggregator: type[StarAggregator],
        data_type: str,
        query: str | list[str] | None,
        simple_analysis: bool,
        output_type: OutputType | list[OutputType],
        multiple_results: bool,
        analyzer_kwargs: dict[str, Any] | None,
        aggregator_kwargs: dict[str, Any] | None,
        filename: str | Sequence[str] | None,
    ) -> None:
        dp: LocalDP | None = getattr(self, "_dp", None)
        declare = getattr(self.flame.runtime, "declare_local_dp", None)
        if dp is not None and declare is not None:  # a node that noises its own releases
            declare(dp.epsilon, dp.sensitivity)
        role = self.flame.get_role()
        if role == "default":
            self.flame.flame_log(f"Analyzer {self.flame.get_id()} started", log_type="info")
            self._run_analyzer(analyzer, data_type, query, simple_analysis, analyzer_kwargs)
        elif role == "aggregator":
            self.flame.flame_log("Aggregator started", log_type="info")
            self._run_aggregator(
                aggregator,
                simple_analysis,
                output_type,
                multiple_results,
                aggregator_kwargs,
                filename,
            )
        else:
            raise StarError(
                f"This node's role is {role!r}; a star analysis needs 'default' or 'aggregator'.",
                hint="Check the node's configuration in the FLAME Hub.",
            )
        if not self.test_mode:
            self.flame.flame_log("Analysis finished!", log_type="info")

    def _local_dp(self, aggregator: StarAggregator) -> LocalDP | None:
        """Local-DP parameters for the final result; StarLocalDPModel overrides this."""
        return None

    def _wait_until_partners_ready(self) -> None:
        """Check, as FLAME does before the first round, that every partner can be reached."""
        if self.flame.get_role() == "default":
            partners = [self.flame.get_aggregator_id()]
        else:
            partners = self.flame.get_participant_ids()
        ready = self.flame.ready_check(partners)
        missing = [node for node in partners if not ready.get(node)]
        if missing:
            raise StarError(
                "Could not contact node(s) " + ", ".join(missing) + ".",
                hint="Every node of the analysis must be running; check their status.",
            )

    def _run_analyzer(
        self,
        analyzer_class: type[StarAnalyzer],
        data_type: str,
        query: str | list[str] | None,
        simple_analysis: bool,
        kwargs: dict[str, Any] | None,
    ) -> None:
        analyzer = analyzer_class(self.flame, **(kwargs or {}))
        self.analyzer = analyzer
        aggregator_id = self.flame.get_aggregator_id()
        self._wait_until_partners_ready()
        self.data = self._load_data(data_type, query)
        while not analyzer.finished:
            result = analyzer.analyze(self.data)
            self._deliver([aggregator_id], result)
            if simple_analysis:
                analyzer.node_finished()
                continue
            answer = self.flame.await_intermediate_data([aggregator_id])[aggregator_id]
            if self.flame.finished:
                analyzer.node_finished()
            else:
                analyzer.latest_result = answer

    def _run_aggregator(
        self,
        aggregator_class: type[StarAggregator],
        simple_analysis: bool,
        output_type: OutputType | list[OutputType],
        multiple_results: bool,
        kwargs: dict[str, Any] | None,
        filename: str | Sequence[str] | None,
    ) -> None:
        aggregator = aggregator_class(self.flame, **(kwargs or {}))
        self.aggregator = aggregator
        self._wait_until_partners_ready()
        analyzers = aggregator.partner_node_ids
        while not aggregator.finished:
            received = self.flame.await_intermediate_data(analyzers)
            result, converged = aggregator.aggregate(list(received.values()), simple_analysis)
            if converged:
                self.flame.flame_log("Submitting final results...", log_type="info")
                self.flame.submit_final_result(
                    result,
                    output_type,
                    multiple_results,
                    filename=filename,
                    local_dp=self._local_dp(aggregator),
                )
                self.flame.analysis_finished()
                aggregator.node_finished()
            else:
                self._deliver(analyzers, result)

    def _deliver(self, receivers: list[str], result: Any) -> None:
        """Send an intermediate result; a node that did not take it is an error, not a hang."""
        _, missed = self.flame.send_intermediate_data(receivers, result)
        if missed:
            raise StarError(
                "The intermediate result could not be delivered to node(s) "
                + ", ".join(missed)
                + ".",
                hint="The node's logs say why (a disclosure refusal, or the hub is unreachable).",
            )

    def _load_data(self, data_type: str, query: str | list[str] | None) -> list[Any] | None:
        queries = [query] if isinstance(query, str) and query else list(query or [])
        if data_type == "fhir":
            return self.flame.get_fhir_data(queries)
        return self.flame.get_s3_data(queries)


class StarLocalDPModel(StarModel):
    """A StarModel whose numeric final result gets Laplace noise (scale = s/epsilon).

    As in FLAME's SDK, noise is added only when both epsilon and sensitivity are given and
    the aggregator's has_converged said True for the final round (``delta_criteria``);
    otherwise the result is released as it is, and flame_lab logs a warning saying why.
    """

    epsilon: float | None
    sensitivity: float | None

    def __init__(
        self,
        analyzer: type[StarAnalyzer],
        aggregator: type[StarAggregator],
        data_type: str,
        query: str | list[str] | None = None,
        simple_analysis: bool = True,
        output_type: OutputType | list[OutputType] = "str",
        multiple_results: bool = False,
        analyzer_kwargs: dict[str, Any] | None = None,
        aggregator_kwargs: dict[str, Any] | None = None,
        epsilon: float | None = None,
        sensitivity: float | None = None,
        test_mode: bool = False,
        test_kwargs: dict[str, Any] | None = None,
        *,
        filename: str | Sequence[str] | None = None,
        stream_log_level: int = 20,
    ) -> None:
        self.epsilon = epsilon
        self.sensitivity = sensitivity
        if epsilon is not None and sensitivity is not None:
            self._dp: LocalDP | None = check_local_dp(epsilon, sensitivity)
        else:
            self._dp = None
        super().__init__(
            analyzer,
            aggregator,
            data_type,
            query,
            simple_analysis,
            output_type,
            multiple_results,
            analyzer_kwargs,
            aggregator_kwargs,
            test_mode,
            test_kwargs,
            filename=filename,
            stream_log_level=stream_log_level,
        )

    def _local_dp(self, aggregator: StarAggregator) -> LocalDP | None:
        if self._dp is None:
            given = "epsilon" if self.epsilon is not None else "sensitivity"
            if self.epsilon is not None or self.sensitivity is not None:
                self.flame.flame_log(
                    f"StarLocalDPModel got {given} only: like FLAME, the final result is "
                    "released without differential privacy (give both epsilon and sensitivity).",
                    log_type="warn",
                )
            return None
        if not aggregator.delta_criteria:
            self.flame.flame_log(
                "has_converged returned False for the final round: like FLAME, the final "
                "result is released without differential privacy.",
                log_type="warn",
            )
            return None
        if self.test_mode:
            self.flame.flame_log(
                f"Test mode: applying local DP with epsilon={self._dp.epsilon:g} and "
                f"sensitivity={self._dp.sensitivity:g}",
                log_type="info",
            )
        return self._dp


def _check_classes(analyzer: Any, aggregator: Any) -> None:
    for given, base, name in (
        (analyzer, StarAnalyzer, "analyzer"),
        (aggregator, StarAggregator, "aggregator"),
    ):
        if not (isinstance(given, type) and issubclass(given, base)):
            raise StarError(
                f"{name}= must be a subclass of {base.__name__} (the class itself, not an "
                f"instance), got {given!r}.",
                hint=f"Define `class My{base.__name__[4:]}({base.__name__})` and pass the class.",
            )
