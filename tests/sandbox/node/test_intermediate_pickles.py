"""Intermediate data is pickled as on FLAME, by the analysis processes; the agent never loads it."""

from __future__ import annotations

import os
import pickle

import pytest

from flame_lab.sandbox.node.runtime_client import (
    from_channel,
    submission_from_channel,
    submission_to_channel,
    to_channel,
)
from flame_lab.security import payload
from flame_lab.star.results import decode_sealed_payload
from flame_lab.star.runtime import FinalSubmission, ReleasedResult
from tests.sandbox.node.test_service import Federation


class Model:
    """Stands for a fitted model: no JSON, no array, only pickle carries it."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = weights


class _RunsACommand:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_only_values_the_channel_cannot_carry_are_pickled_and_only_in_the_analysis():
    value = {"n": 3, "labels": {"a", "b"}, "model": Model([0.5])}
    sent = to_channel(value, pickle_unknown=True)
    assert sent["n"] == 3  # plain values stay inspectable
    assert set(sent["labels"]) == {"$pickle"} and set(sent["model"]) == {"$pickle"}
    at_the_agent = from_channel(sent)
    assert isinstance(at_the_agent["model"], payload.OpaquePickle)
    assert to_channel(at_the_agent) == sent  # carried on unchanged
    received = from_channel(sent, unpickle=True)
    assert received["labels"] == {"a", "b"} and received["model"].weights == [0.5]
    with pytest.raises(Exception, match="cannot hold a value of type set"):
        to_channel({"labels": {"a"}})  # the agent side never pickles


def test_a_value_that_cannot_be_pickled_is_a_clear_error():
    with pytest.raises(Exception, match="cannot travel between FLAME nodes"):
        to_channel({"f": lambda x: x}, pickle_unknown=True)


def test_a_hostile_pickle_passes_through_the_agents_as_inert_bytes(tmp_path):
    marker = tmp_path / "pwned"
    fed = Federation()
    body = {"$pickle": pickle.dumps(_RunsACommand(str(marker)))}
    assert fed.services["aggregator"].send_message(["hospital-a"], "cat", body) == [
        ["hospital-a"],
        [],
    ]
    got = fed.services["hospital-a"].receive_message(5)
    assert got is not None and got["body"] == body
    assert not marker.exists()


def test_a_flame_node_passes_a_pickle_on_and_a_strict_node_refuses_what_it_cannot_inspect():
    from flame_lab.privacy import NodePolicy

    body = to_channel({"model": Model([1.0])}, pickle_unknown=True)
    flame = Federation(NodePolicy(profile="flame"))
    assert flame.services["hospital-a"].send_message(["aggregator"], "cat", body) == [
        ["aggregator"],
        [],
    ]
    strict = Federation(NodePolicy(profile="strict"))
    with pytest.raises(Exception, match="OpaquePickle cannot be inspected by the node"):
        strict.services["hospital-a"].send_message(["aggregator"], "cat", body)


GLOBAL_MODEL = """
    import csv, io
    from flame.star import StarAnalyzer, StarAggregator, StarModel

    class Model:
        def __init__(self, threshold):
            self.threshold = threshold

        def above(self, ages):
            return sum(1 for a in ages if a > self.threshold)

    class Counter(StarAnalyzer):
        def __init__(self, flame):
            super().__init__(flame)

        def analysis_method(self, data, model):
            rows = csv.DictReader(io.StringIO(data[0]["patients.csv"].decode()))
            ages = [float(row["age"]) for row in rows]
            if model is None:
                return {"total": sum(ages), "n": len(ages)}
            return {"above": float(model.above(ages)), "n": len(ages)}

    class Global(StarAggregator):
        def __init__(self, flame):
            super().__init__(flame)

        def aggregation_method(self, results):
            if "total" in results[0]:
                return Model(sum(r["total"] for r in results) / sum(r["n"] for r in results))
            n = sum(r["n"] for r in results)
            return {"share_above_mean": sum(r["above"] for r in results) / n}

        def has_converged(self, result, last_result):
            return isinstance(result, dict)

    StarModel(Counter, Global, "s3", query=["patients.csv"], simple_analysis=False,
              output_type="pickle")
"""


def test_a_model_object_goes_out_to_the_analyzers_while_the_agents_never_unpickle(
    tmp_path, monkeypatch
):
    def refuse(*args, **kwargs):
        raise AssertionError("a node agent unpickled")

    # the agents' services run in this process: any unpickling there now fails the run
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    fed = Federation()
    outcomes = fed.run(tmp_path, GLOBAL_MODEL)
    assert all(o.ok for o in outcomes.values()), {n: o.failure for n, o in outcomes.items()}
    share = fed.finals[0].values["share_above_mean"]
    assert 0.2 < share < 0.8


def test_a_pickle_result_the_node_cannot_encode_is_sealed_as_a_pickle_and_opened_safely():
    submission = FinalSubmission((ReleasedResult({"a", "b"}, "pickle"),))
    at_the_agent = submission_from_channel(submission_to_channel(submission))
    value = at_the_agent.values
    assert isinstance(value, payload.OpaquePickle)
    data, content_type = payload.encode(value)
    assert content_type == payload.PICKLE
    assert decode_sealed_payload(data, content_type) == {"a", "b"}
    with pytest.raises(Exception, match="never loads"):
        payload.decode(data, content_type)
    plain = submission_from_channel(
        submission_to_channel(FinalSubmission((ReleasedResult({"mean": 1.5}, "pickle"),)))
    )
    assert plain.values == {"mean": 1.5}  # what JSON can carry stays JSON
