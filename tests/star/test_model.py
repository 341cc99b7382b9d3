"""StarModel runs the FLAME star loop: names, data access, rounds, kwargs, misuse errors."""

from __future__ import annotations

import inspect
import statistics
from typing import Any

import pytest

import flame_lab.star as star
from flame_lab.errors import NoStarRuntime, StarError
from flame_lab.star import StarAggregator, StarAnalyzer, StarModel, StarModelTester
from tests.star.analyses import CsvSumAnalyzer, PooledMeanAggregator, csv_split


def _params(obj: Any) -> list[str]:
    return list(inspect.signature(obj).parameters)


def test_public_names_have_the_sdk_signatures():
    assert _params(StarModel)[:9] == [
        "analyzer",
        "aggregator",
        "data_type",
        "query",
        "simple_analysis",
        "output_type",
        "multiple_results",
        "analyzer_kwargs",
        "aggregator_kwargs",
    ]
    assert _params(star.StarLocalDPModel)[9:11] == ["epsilon", "sensitivity"]
    assert _params(StarModel)[9:11] == ["test_mode", "test_kwargs"]
    assert _params(star.StarLocalDPModel)[11:13] == ["test_mode", "test_kwargs"]
    assert _params(StarModelTester)[:14] == [
        "data_splits",
        "analyzer",
        "aggregator",
        "data_type",
        "node_roles",
        "query",
        "simple_analysis",
        "output_type",
        "multiple_results",
        "analyzer_kwargs",
        "aggregator_kwargs",
        "epsilon",
        "sensitivity",
        "result_filepath",
    ]
    assert _params(StarAnalyzer.analysis_method) == ["self", "data", "aggregator_results"]
    assert _params(StarAggregator.aggregation_method) == ["self", "analysis_results"]
    assert _params(StarAggregator.has_converged) == ["self", "result", "last_result"]
    for name in (
        "flame_log", "set_progress", "get_progress", "get_id", "get_role",
        "get_participant_ids", "get_analysis_id", "get_data_sources", "get_fhir_data",
        "get_s3_data", "send_message", "await_messages", "submit_final_result",
        "ready_check", "fhir_to_csv", "save_intermediate_data", "get_intermediate_data",
        "get_messages", "delete_messages", "clear_messages", "get_local_tags",
        "send_message_and_wait_for_responses", "get_data_client", "get_participants",
    ):  # fmt: skip
        assert callable(getattr(star.FlameCoreSDK, name)), name
    # flamesdk 0.6: filename comes before local_dp
    assert _params(star.FlameCoreSDK.submit_final_result)[1:6] == [
        "result", "output_type", "multiple_results", "filename", "local_dp",
    ]  # fmt: skip
    assert _params(star.FlameCoreSDK.flame_log)[1:7] == [
        "msg", "sep", "end", "log_type", "append", "halt_submission",
    ]  # fmt: skip
    assert inspect.signature(star.FlameCoreSDK.flame_log).parameters["log_type"].default == "info"


def test_one_round_mean_over_s3_csv_bytes_equals_the_pooled_mean():
    splits = [[30, 41, 52], [25, 38], [60, 61, 47, 33]]
    tester = StarModelTester(
        [csv_split(ages) for ages in splits],
        CsvSumAnalyzer,
        PooledMeanAggregator,
        "s3",
        quiet=True,
    )
    pooled = statistics.fmean(a for ages in splits for a in ages)
    assert tester.result == str(pooled)
    assert float(tester.result) == pytest.approx(pooled)
    assert tester.num_iterations == 1


def test_s3_query_selects_objects_by_key():
    split = [{"patients.csv": b"age\n10\n20\n", "ignored.csv": b"age\n1000\n"}]
    tester = StarModelTester(
        [split, split], CsvSumAnalyzer, PooledMeanAggregator, "s3", query="patients.csv", quiet=True
    )
    assert float(tester.result) == pytest.approx(15.0)


class BundleCountAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        ages = []
        for source in data:
            for bundle in source.values():
                ages += [e["resource"]["age"] for e in bundle["entry"]]
        return ages


class ConcatAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return {
            "n": sum(len(r) for r in analysis_results),
            "max": max(max(r) for r in analysis_results),
        }

    def has_converged(self, result, last_result):
        return True


def _bundle(*ages: int) -> dict[str, Any]:
    return {"resourceType": "Bundle", "entry": [{"resource": {"age": a}} for a in ages]}


def test_fhir_data_arrives_as_one_query_to_bundle_dict_per_source():
    query = "Patient?_count=100"
    splits = [
        [{query: _bundle(30, 40), "Observation?code=x": _bundle(999)}],
        [{query: _bundle(50)}, {query: _bundle(70, 20)}],
    ]
    tester = StarModelTester(
        splits, BundleCountAnalyzer, ConcatAggregator, "fhir", query=query,
        output_type="pickle", quiet=True,
    )  # fmt: skip
    assert tester.result == {"n": 5, "max": 70}


class GradientAnalyzer(StarAnalyzer):
    """Gradient of the squared error around the aggregator's current estimate."""

    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        theta = 0.0 if aggregator_results is None else aggregator_results
        return {"grad": sum(theta - x for x in data), "n": len(data)}


class GradientAggregator(StarAggregator):
    calls: list[tuple[int, Any, Any]]

    def __init__(self, flame, learning_rate: float = 0.5):
        super().__init__(flame)
        self.theta = 0.0
        self.learning_rate = learning_rate
        self.calls = []

    def aggregation_method(self, analysis_results):
        grad = sum(r["grad"] for r in analysis_results) / sum(r["n"] for r in analysis_results)
        self.theta -= self.learning_rate * grad
        return self.theta

    def has_converged(self, result, last_result):
        self.calls.append((self.num_iterations, result, last_result))
        if last_result is None:  # round one: FLAME asks too, with no previous result
            return False
        return abs(result - last_result) < 1e-9


def test_iterative_gradient_descent_converges_to_the_pooled_mean():
    splits = [[1.0, 2.0, 3.0, 4.0], [10.0, 12.0], [7.0]]
    tester = StarModelTester(
        splits, GradientAnalyzer, GradientAggregator, "s3", simple_analysis=False,
        output_type="pickle", quiet=True,
    )  # fmt: skip
    pooled = statistics.fmean(x for split in splits for x in split)
    assert tester.result == pytest.approx(pooled, abs=1e-6)
    aggregator = tester.models["node_3"].aggregator
    assert tester.num_iterations == aggregator.num_iterations > 5
    # has_converged is asked every round, the first included, with the previous result.
    assert [c[0] for c in aggregator.calls] == list(range(tester.num_iterations))
    assert aggregator.calls[0][2] is None
    assert all(last is not None for _, _, last in aggregator.calls[1:])
    assert aggregator.delta_criteria is True
    # Each analyzer ran once per round and kept its state across rounds.
    for node in ("node_0", "node_1", "node_2"):
        assert tester.models[node].analyzer.num_iterations == tester.num_iterations


class NaiveConvergence(StarAggregator):
    """Written as if has_converged were skipped on round one (it is not, on FLAME)."""

    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return sum(analysis_results)

    def has_converged(self, result, last_result):
        return abs(result - last_result) < 1e-9


class ConstantAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        return 1.0


def test_has_converged_with_none_on_round_one_fails_here_as_it_fails_on_a_node():
    with pytest.raises(TypeError, match="NoneType"):
        StarModelTester(
            [[1.0], [2.0]], ConstantAnalyzer, NaiveConvergence, "s3", simple_analysis=False,
            quiet=True,
        )  # fmt: skip


class AlwaysConverged(NaiveConvergence):
    def has_converged(self, result, last_result):
        self.seen = [*getattr(self, "seen", []), last_result]
        return True


def test_an_iterative_analysis_never_stops_after_round_one_even_if_converged():
    tester = StarModelTester(
        [[1.0], [2.0]], ConstantAnalyzer, AlwaysConverged, "s3", simple_analysis=False,
        quiet=True,
    )  # fmt: skip
    assert tester.num_iterations == 2
    assert tester.models["node_2"].aggregator.seen == [None, 2.0]


class OldThreeArgConvergence(NaiveConvergence):
    def has_converged(self, result, last_result, num_iterations):
        return num_iterations >= 3


def test_the_old_three_argument_has_converged_fails_as_on_flame_0_6():
    with pytest.raises(TypeError, match="num_iterations"):
        StarModelTester([[1.0], [3.0]], ConstantAnalyzer, OldThreeArgConvergence, "s3", quiet=True)


def test_analyzer_and_aggregator_kwargs_reach_the_constructors():
    splits = [[{"x.csv": b"weight\n1.234\n"}], [{"x.csv": b"weight\n2.0\n"}]]
    tester = StarModelTester(
        splits, CsvSumAnalyzer, PooledMeanAggregator, "s3", output_type="pickle",
        analyzer_kwargs={"column": "weight"}, aggregator_kwargs={"digits": 2}, quiet=True,
    )  # fmt: skip
    assert tester.result == 1.62


def test_node_attributes_are_those_of_the_sdk():
    tester = StarModelTester(
        [csv_split([1]), csv_split([2])], CsvSumAnalyzer, PooledMeanAggregator, "s3", quiet=True
    )
    analyzer = tester.models["node_0"].analyzer
    aggregator = tester.models["node_2"].aggregator
    assert (analyzer.id, analyzer.role) == ("node_0", "default")
    assert analyzer.partner_node_ids == ["node_1", "node_2"]
    assert (aggregator.id, aggregator.role) == ("node_2", "aggregator")
    assert aggregator.partner_node_ids == ["node_0", "node_1"]
    assert aggregator.latest_result == pytest.approx(1.5)
    assert analyzer.finished and aggregator.finished


def test_star_model_without_a_runtime_says_how_to_run_it():
    with pytest.raises(NoStarRuntime) as caught:
        StarModel(CsvSumAnalyzer, PooledMeanAggregator, "s3")
    assert "StarModelTester" in str(caught.value)
    assert caught.value.hint


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"analyzer": PooledMeanAggregator}, "subclass of StarAnalyzer"),
        ({"aggregator": object()}, "subclass of StarAggregator"),
        ({"data_type": "csv"}, "data_type"),
        ({"output_type": "json"}, "output_type"),
    ],
)
def test_misused_star_model_arguments_raise_before_any_work(kwargs, fragment):
    args = {"analyzer": CsvSumAnalyzer, "aggregator": PooledMeanAggregator, "data_type": "s3"}
    args.update(kwargs)
    with pytest.raises(StarError, match=fragment):
        StarModel(**args)


def test_aggregator_without_has_converged_is_refused_as_on_real_nodes():
    class NoConvergence(StarAggregator):
        def aggregation_method(self, analysis_results):
            return 0

    with pytest.raises(TypeError, match="has_converged"):
        StarModelTester([csv_split([1])], CsvSumAnalyzer, NoConvergence, "s3", quiet=True)
