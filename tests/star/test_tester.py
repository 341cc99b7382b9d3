"""StarModelTester: results printed or written like FLAME's tester, kept on the instance,
failures re-raised with the analysis code's traceback, and no hang when a node fails."""

from __future__ import annotations

import pickle
import threading
import traceback

import numpy as np
import pytest

from flame_lab.errors import DPParameterError, StarError
from flame_lab.star import StarAggregator, StarAnalyzer, StarModelTester
from tests.star.analyses import CsvSumAnalyzer, PooledMeanAggregator, csv_split

SPLITS = [csv_split([10, 20]), csv_split([30])]


def run_bounded(**kwargs):
    """Run a tester in a helper thread; fail clearly (not hang) if it does not end in 15 s."""
    outcome: dict[str, object] = {}

    def target():
        try:
            outcome["tester"] = StarModelTester(**kwargs)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive(), "StarModelTester did not end after a node failed"
    return outcome


def test_final_result_is_printed_and_kept_on_the_instance(capsys):
    tester = StarModelTester(SPLITS, CsvSumAnalyzer, PooledMeanAggregator, "s3")
    out = capsys.readouterr().out
    assert "Final result: 20.0" in out
    assert "[aggregator node_2] Aggregator started" in out
    assert tester.result == "20.0"
    assert tester.submission.results[0].output_type == "str"


def test_quiet_prints_nothing_but_keeps_the_logs(capsys):
    tester = StarModelTester(SPLITS, CsvSumAnalyzer, PooledMeanAggregator, "s3", quiet=True)
    assert capsys.readouterr().out == ""
    assert {entry.node_id for entry in tester.logs} == {"node_0", "node_1", "node_2"}


def test_result_filepath_receives_the_result_per_output_type(tmp_path):
    path = tmp_path / "mean.txt"
    StarModelTester(SPLITS, CsvSumAnalyzer, PooledMeanAggregator, "s3", result_filepath=str(path))
    assert path.read_text() == "20.0"


class PairAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        total = sum(r["n"] for r in analysis_results)
        return {"n": total}, np.arange(total)

    def has_converged(self, result, last_result):
        return True


def test_pickle_results_are_written_as_pickles_to_numbered_files_as_flame_writes_them(tmp_path):
    tester = StarModelTester(
        SPLITS, CsvSumAnalyzer, PairAggregator, "s3", output_type="pickle",
        multiple_results=True, result_filepath=str(tmp_path / "out.pkl"), quiet=True,
    )  # fmt: skip
    assert tester.result[0] == {"n": 3}
    # FLAME's documented next step: pickle.load(open(path, 'rb'))
    with (tmp_path / "out_1.pkl").open("rb") as handle:
        assert pickle.load(handle) == {"n": 3}  # noqa: S301 - written by this test
    with (tmp_path / "out_2.pkl").open("rb") as handle:
        assert pickle.load(handle).tolist() == [0, 1, 2]  # noqa: S301 - written by this test


def test_write_result_follows_the_output_type_of_each_result(tmp_path, capsys):
    paths = [str(tmp_path / "a.txt"), str(tmp_path / "b.bin"), str(tmp_path / "c.pkl")]
    StarModelTester.write_result(
        [3.5, b"\x89PNG", {"k": 1}], ["str", "bytes", "pickle"], paths, multiple_results=True
    )
    assert (tmp_path / "a.txt").read_text() == "3.5"
    assert (tmp_path / "b.bin").read_bytes() == b"\x89PNG"
    assert pickle.loads((tmp_path / "c.pkl").read_bytes()) == {"k": 1}  # noqa: S301 - ours
    assert "Final result_3 written to" in capsys.readouterr().out


def test_multiple_results_are_printed_one_by_one(capsys):
    StarModelTester(SPLITS, CsvSumAnalyzer, PairAggregator, "s3", multiple_results=True)
    out = capsys.readouterr().out
    assert "Final result_1: {'n': 3}" in out
    assert "Final result_2: [0 1 2]" in out


class FailingAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        if self.id == "node_1":
            return compute_something_wrong(data)
        return {"sum": 1.0, "n": 1}


def compute_something_wrong(data):
    return {"sum": 1 / 0, "n": len(data)}


def test_an_analyzer_exception_reaches_the_caller_with_the_analysis_traceback():
    outcome = run_bounded(
        data_splits=[[1], [2], [3]], analyzer=FailingAnalyzer, aggregator=PooledMeanAggregator,
        data_type="s3", quiet=True,
    )  # fmt: skip
    error = outcome["error"]
    assert isinstance(error, ZeroDivisionError)
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert frames[-2:] == ["analysis_method", "compute_something_wrong"]
    assert any("analyzer node_1" in note for note in error.__notes__)


class EndlessAggregator(PooledMeanAggregator):
    def has_converged(self, result, last_result):
        raise RuntimeError("convergence check broke")


def test_an_aggregator_failure_stops_analyzers_waiting_for_the_next_round():
    outcome = run_bounded(
        data_splits=SPLITS, analyzer=CsvSumAnalyzer, aggregator=EndlessAggregator,
        data_type="s3", simple_analysis=False, quiet=True,
    )  # fmt: skip
    assert isinstance(outcome["error"], RuntimeError)
    assert any("aggregator node_2" in note for note in outcome["error"].__notes__)


class SilentAnalyzer(StarAnalyzer):
    """Waits for a message the aggregator never sends."""

    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        self.flame.await_messages([self.flame.get_aggregator_id()], "never-sent")
        return {"sum": 0.0, "n": 1}


def test_nodes_waiting_for_each_other_are_reported_as_a_deadlock_not_hung():
    outcome = run_bounded(
        data_splits=[[1]], analyzer=SilentAnalyzer, aggregator=PooledMeanAggregator,
        data_type="s3", quiet=True,
    )  # fmt: skip
    assert isinstance(outcome.get("error"), StarError)
    assert "Deadlock" in str(outcome["error"])


class WaitsAfterDoneAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        if self.id == "node_0":
            self.flame.await_messages(["node_1"], "never-sent")
        return {"sum": 1.0, "n": 1}


def test_waiting_for_nodes_that_have_finished_is_reported_not_hung():
    outcome = run_bounded(
        data_splits=[[1], [2]], analyzer=WaitsAfterDoneAnalyzer, aggregator=PooledMeanAggregator,
        data_type="s3", quiet=True,
    )  # fmt: skip
    assert isinstance(outcome.get("error"), StarError)
    assert "node_0" in str(outcome["error"])


def test_local_dp_through_the_tester_adds_seeded_noise_and_records_the_parameters():
    def run(seed):
        return StarModelTester(
            SPLITS, CsvSumAnalyzer, PooledMeanAggregator, "s3", epsilon=0.5, sensitivity=1.0,
            rng=np.random.default_rng(seed), quiet=True,
        )  # fmt: skip

    first, again, other = run(7), run(7), run(8)
    assert first.result == again.result != other.result
    assert float(first.result) != 20.0
    assert first.submission.local_dp.epsilon == 0.5
    assert first.submission.local_dp.scale == 2.0


def test_local_dp_refuses_a_non_numeric_final_result():
    with pytest.raises(DPParameterError, match="single number"):
        StarModelTester(
            SPLITS, CsvSumAnalyzer, PairAggregator, "s3", epsilon=1.0, sensitivity=1.0,
            quiet=True,
        )  # fmt: skip


def test_star_local_dp_model_with_one_parameter_adds_no_noise_but_says_so():
    tester = StarModelTester(SPLITS, CsvSumAnalyzer, PooledMeanAggregator, "s3", epsilon=1.0)
    exact = StarModelTester(SPLITS, CsvSumAnalyzer, PooledMeanAggregator, "s3", quiet=True)
    assert tester.result == exact.result
    assert tester.submission.local_dp is None
    assert any("without differential privacy" in e.message for e in tester.logs)
    with pytest.raises(DPParameterError, match="> 0"):
        StarModelTester(
            SPLITS, CsvSumAnalyzer, PooledMeanAggregator, "s3", epsilon=-1.0, sensitivity=1.0
        )


def test_empty_data_splits_are_refused():
    with pytest.raises(StarError, match="non-empty"):
        StarModelTester([], CsvSumAnalyzer, PooledMeanAggregator, "s3")


class FhirInS3Analyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        return self.flame.get_fhir_data(["Patient"])


def test_asking_for_the_other_data_type_is_explained():
    with pytest.raises(StarError, match="fhir data, but the tester was given s3 data"):
        StarModelTester(SPLITS, FhirInS3Analyzer, PooledMeanAggregator, "s3", quiet=True)


class QuitsWithoutConverging(PooledMeanAggregator):
    """Aggregation code that leaves the loop on its own: nothing is ever submitted."""

    def aggregation_method(self, analysis_results):
        self.node_finished()
        return super().aggregation_method(analysis_results)

    def has_converged(self, result, last_result):
        return False


def test_an_aggregator_that_quits_without_submitting_is_reported_not_hung():
    outcome = run_bounded(
        data_splits=SPLITS, analyzer=CsvSumAnalyzer, aggregator=QuitsWithoutConverging,
        data_type="s3", simple_analysis=False, quiet=True,
    )  # fmt: skip
    # The analyzers wait for a next round that never comes.
    assert isinstance(outcome.get("error"), StarError)
    assert "Deadlock" in str(outcome["error"])


class SetAggregator(PooledMeanAggregator):
    def aggregation_method(self, analysis_results):
        return {r["n"] for r in analysis_results}


def test_a_python_object_is_released_as_flame_releases_it(tmp_path):
    StarModelTester(
        SPLITS, CsvSumAnalyzer, SetAggregator, "s3", output_type="pickle",
        result_filepath=tmp_path / "r.pkl", quiet=True,
    )  # fmt: skip
    assert pickle.loads((tmp_path / "r.pkl").read_bytes()) == {1, 2}  # noqa: S301 - ours
