"""flame.star behaves as PrivateAIM's SDK (flame 0.6.4, flamesdk 0.6) where researchers notice."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from flame_lab.errors import StarError
from flame_lab.star import (
    FlameCoreSDK,
    StarAggregator,
    StarAnalyzer,
    StarLocalDPModel,
    StarModel,
    StarModelTester,
)
from flame_lab.star.inprocess import InProcessFederation, NodeSpec
from flame_lab.star.mock import MockFlameCoreSDK


class MeanAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        return sum(data) / len(data)


class MeanAggregator(StarAggregator):
    converged_answer = True

    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return sum(analysis_results) / len(analysis_results)

    def has_converged(self, result, last_result):
        return self.converged_answer


class NeverSaysConverged(MeanAggregator):
    converged_answer = False


# -- StarModelTester's parameters ---------------------------------------------------------------
def test_node_roles_is_the_fifth_parameter_so_positional_calls_mean_what_they_mean_upstream():
    tester = StarModelTester(
        [[1, 2], [3, 4]], MeanAnalyzer, MeanAggregator, "s3", ["default", "default"], None,
        True, "pickle", quiet=True,
    )  # fmt: skip
    assert tester.result == 2.5
    assert tester.submission.results[0].output_type == "pickle"


@pytest.mark.parametrize("roles", [["default"], ["default", "aggregator"], "default"])
def test_node_roles_that_do_not_fit_the_splits_are_refused(roles):
    with pytest.raises(StarError, match=r"node_roles|analyzer node"):
        StarModelTester([[1], [2]], MeanAnalyzer, MeanAggregator, "s3", node_roles=roles)


def test_test_input_warns_about_splits_not_shaped_like_a_nodes_data(capsys):
    StarModelTester([[1, 2], [3, 4]], MeanAnalyzer, MeanAggregator, "s3", quiet=False)
    out = capsys.readouterr().out
    assert "one dict per data source" in out
    lines: list[str] = []
    StarModelTester.test_input([{"a.csv": b"x"}], echo=lines.append)
    assert lines == []
    StarModelTester.test_input("text", echo=lines.append)
    assert "give each split as a list" in lines[0]


# -- StarLocalDPModel ---------------------------------------------------------------------------
def test_local_dp_noise_is_added_only_when_has_converged_said_true():
    exact = StarModelTester([[1, 2], [3, 4]], MeanAnalyzer, NeverSaysConverged, "s3", quiet=True)
    tester = StarModelTester(
        [[1, 2], [3, 4]], MeanAnalyzer, NeverSaysConverged, "s3",
        epsilon=0.1, sensitivity=1.0, quiet=True,
    )  # fmt: skip
    assert tester.result == exact.result == "2.5"
    assert tester.submission.local_dp is None
    assert any("has_converged returned False" in e.message for e in tester.logs)

    noisy = StarModelTester(
        [[1, 2], [3, 4]], MeanAnalyzer, MeanAggregator, "s3", epsilon=0.1, sensitivity=1.0,
        rng=np.random.default_rng(3), quiet=True,
    )  # fmt: skip
    assert noisy.submission.local_dp is not None
    assert noisy.result != "2.5"


# -- test_mode / test_kwargs --------------------------------------------------------------------
def _run_test_mode(model_class: type[StarModel], **extra: Any) -> list[Any]:
    ids = ["a", "b", "agg"]
    roles = {"a": "default", "b": "default", "agg": "aggregator"}
    data = {"a": [1.0, 3.0], "b": [5.0], "agg": None}
    results: list[Any] = []
    errors: list[BaseException] = []

    def node(node_id: str) -> None:
        try:
            model = model_class(
                MeanAnalyzer, MeanAggregator, "s3", output_type="pickle", test_mode=True,
                test_kwargs={
                    "s3_data": data[node_id], "node_id": node_id, "aggregator_id": "agg",
                    "role": roles[node_id],
                    "participants": [{"id": i, "role": roles[i]} for i in ids if i != node_id],
                },
                **extra,
            )  # fmt: skip
            results.append(model.flame.final_results_storage)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=node, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    return [r for r in results if r is not None]


def test_star_model_in_test_mode_runs_one_node_of_a_shared_local_federation():
    assert _run_test_mode(StarModel) == [3.5]  # the mean of the two nodes' means


def test_test_mode_needs_the_kwargs_flames_mock_needs():
    with pytest.raises(StarError, match="missing: aggregator_id, participants"):
        MockFlameCoreSDK({"node_id": "a", "role": "default", "s3_data": []})
    with pytest.raises(StarError, match="fhir_data' or 's3_data"):
        MockFlameCoreSDK(
            {"node_id": "a", "role": "default", "aggregator_id": "b", "participants": []}
        )


# -- FlameCoreSDK methods of flamesdk 0.6 -------------------------------------------------------
def _pair() -> tuple[FlameCoreSDK, FlameCoreSDK, InProcessFederation]:
    fed = InProcessFederation(
        [NodeSpec("a", "default", [{"x": b"1"}]), NodeSpec("agg", "aggregator")], data_type="s3"
    )
    return FlameCoreSDK(runtime=fed.runtime("a")), FlameCoreSDK(runtime=fed.runtime("agg")), fed


def test_config_ready_check_and_participants():
    a, agg, _ = _pair()
    assert (a.config.node_id, a.config.node_role, a.config.finished) == ("a", "default", False)
    assert a.ready_check() == {"agg": True}
    assert agg.ready_check(["a"]) == {"a": True}
    with pytest.raises(StarError, match="not another node"):
        a.ready_check(["stranger"])
    agg.analysis_finished()
    assert agg.config.finished is True


def test_messages_can_be_listed_read_deleted_and_cleared():
    a, agg, _ = _pair()
    a.send_message(["agg"], "hello", {"n": 1})
    a.send_message(["agg"], "other", {"n": 2})
    unread = agg.get_messages()
    assert [(m.category, m.body) for m in unread] == [("hello", {"n": 1}), ("other", {"n": 2})]
    agg.await_messages(["a"], "hello")
    assert [m.category for m in agg.get_messages("read")] == ["hello"]
    assert [m.category for m in agg.get_messages("unread")] == ["other"]
    assert agg.delete_messages([unread[1].id]) == 1
    assert agg.get_messages() == []
    assert agg.clear_messages("read") == 1
    assert agg.clear_messages("all") == 0
    with pytest.raises(StarError, match="status"):
        agg.get_messages("everything")  # type: ignore[arg-type]


def test_send_message_and_wait_for_responses_pairs_a_question_with_its_answers():
    a, agg, _ = _pair()
    answers: dict[str, Any] = {}

    def answer() -> None:
        asked = a.await_messages(["agg"], "ping")
        a.send_message(["agg"], "ping", {"pong": asked["agg"][0].body["n"] + 1})

    thread = threading.Thread(target=answer)
    thread.start()
    answers = agg.send_message_and_wait_for_responses(["a"], "ping", {"n": 41})
    thread.join(10)
    assert answers["a"][-1].body == {"pong": 42}


def test_intermediate_data_saved_globally_reaches_the_receiver_by_its_id():
    a, agg, _ = _pair()
    stored = a.save_intermediate_data({"w": [1.0, 2.0]}, "global", remote_node_ids=["agg"])
    assert stored["agg"]["status"] == "success"
    assert agg.get_intermediate_data("global", query=stored["agg"]["id"]) == {"w": [1.0, 2.0]}
    with pytest.raises(StarError, match="remote_node_ids"):
        a.save_intermediate_data(1, "global")


def test_intermediate_data_saved_locally_is_found_by_id_and_tag():
    a, _, _ = _pair()
    first = a.save_intermediate_data(1, "local", tag="round-1")
    a.save_intermediate_data(2, "local", tag="round-1")
    a.save_intermediate_data(3, "local", tag="other")
    assert a.get_intermediate_data("local", query=first["id"]) == 1
    assert a.get_intermediate_data("local", tag="round-1") == [1, 2]
    assert a.get_intermediate_data("local", tag="round-1", tag_option="last") == [2]
    assert a.get_local_tags() == ["round-1", "other"]
    assert a.get_local_tags(filter="round") == ["round-1"]
    with pytest.raises(StarError, match="Invalid tag"):
        a.save_intermediate_data(1, "local", tag="Not OK")


def test_get_data_client_is_none_with_a_warning_as_on_a_node_without_a_data_api():
    a, _, fed = _pair()
    assert a.get_data_client("source") is None
    assert fed.logs[-1].log_type == "warn"


def test_submit_final_result_takes_filename_before_local_dp_positionally():
    _, agg, fed = _pair()
    agg.submit_final_result(2.0, "str", False, "mean.txt")
    assert fed.submission is not None
    assert fed.submission.results[0].filename == "mean.txt"
    assert fed.submission.local_dp is None


OBSERVATIONS = {
    "resourceType": "Bundle",
    "total": 3,
    "entry": [
        {
            "resource": {
                "subject": {"reference": f"Patient/{p}"},
                "code": {"coding": [{"code": code}]},
                "valueQuantity": {"value": v},
            }
        }
        for p, code, v in [("1", "hb", 13.1), ("1", "bmi", 22.0), ("2", "hb", 11.9)]
    ],
}


def test_fhir_to_csv_pivots_observations_into_rows_and_columns():
    a, agg, _ = _pair()
    args = (
        "resource.code.coding.code",
        "resource.valueQuantity.value",
        "Observation",
        "resource.subject.reference",
    )
    table = a.fhir_to_csv(OBSERVATIONS, *args, output_type="dict")
    assert table == {"hb": {"Patient/1": 13.1, "Patient/2": 11.9}, "bmi": {"Patient/1": 22.0}}
    text = a.fhir_to_csv(OBSERVATIONS, *args, row_col_name="patient").read()
    assert text.splitlines() == ["patient,hb,bmi", "Patient/1,13.1,22.0", "Patient/2,11.9,"]
    only_hb = a.fhir_to_csv(OBSERVATIONS, *args, col_id_filters=["hb"], output_type="dict")
    assert list(only_hb) == ["hb"]
    with pytest.raises(StarError, match="row_key_seq"):
        a.fhir_to_csv(OBSERVATIONS, "code", "value", "Observation")
    with pytest.raises(StarError, match="does not know"):
        a.fhir_to_csv(OBSERVATIONS, "code", "value", "Patient")
    assert agg.fhir_to_csv(OBSERVATIONS, *args) is None  # the aggregator has no data API


def test_dp_model_signature_keeps_epsilon_and_sensitivity_before_test_mode():
    import inspect

    names = list(inspect.signature(StarLocalDPModel).parameters)
    assert names[9:13] == ["epsilon", "sensitivity", "test_mode", "test_kwargs"]
