"""The node's rules hold where the analysis cannot bypass them: in the agent's service."""

from __future__ import annotations

import csv
import io
import statistics
import textwrap
import threading
from pathlib import Path

import pytest

from flame_lab.errors import NodeDataError, PolicyRefused, StarError
from flame_lab.privacy import NodePolicy, ResourceLimits
from flame_lab.sandbox.node.datasets import NodeData
from flame_lab.sandbox.node.runner import RunOutcome, RunSpec, run_analysis
from flame_lab.sandbox.node.runtime_client import submission_to_channel, to_channel
from flame_lab.sandbox.node.service import (
    NodeFacts,
    NodeService,
    Switchboard,
    decode_body,
    encode_body,
    hub_level,
)
from flame_lab.sandbox.node.synthetic import generate
from flame_lab.star.runtime import FinalSubmission, ReleasedResult

LIMITS = ResourceLimits(cpu_seconds=30, memory_mib=1024, wall_seconds=60, allow_unconfined=True)
SITES = {"hospital-a": 40, "hospital-b": 60}


def _ages(site) -> list[int]:
    rows = csv.DictReader(io.StringIO(site.tables["patients.csv"].decode()))
    return [int(row["age"]) for row in rows]


class Federation:
    """Two data services and one aggregator service on one switchboard."""

    def __init__(self, policy: NodePolicy | None = None) -> None:
        self.switchboard = Switchboard()
        self.sites = {name: generate(name, n_patients=n) for name, n in SITES.items()}
        everyone = (*SITES, "aggregator")
        self.logs: dict[str, list[tuple[str, str]]] = {n: [] for n in everyone}
        self.finals: list[FinalSubmission] = []
        self.progress: dict[str, list[int]] = {n: [] for n in everyone}
        self.services: dict[str, NodeService] = {}
        for node in everyone:
            site = self.sites.get(node)
            self.services[node] = NodeService(
                NodeFacts(
                    node,
                    "aggregator" if site is None else "default",
                    everyone,
                    "aggregator",
                    "analysis-1",
                    "project-1",
                ),
                None if site is None else NodeData.from_site(site),
                policy or NodePolicy(),
                self.switchboard.transport(node),
                on_log=lambda level, text, node=node: self.logs[node].append((level, text)),
                on_progress=self.progress[node].append,
                on_final=self._final,
            )

    def _final(self, submission: FinalSubmission) -> dict[str, str]:
        self.finals.append(submission)
        return {"status": "sealed", "files": "1"}

    def run(self, tmp_path: Path, code: str, nodes=None) -> dict[str, RunOutcome]:
        """Run ``code`` on every node (or ``nodes``), each in its own confined process."""
        code_dir = tmp_path / "code"
        code_dir.mkdir(exist_ok=True)
        (code_dir / "entry.py").write_text(textwrap.dedent(code))
        outcomes: dict[str, RunOutcome] = {}

        def one(node: str) -> None:
            spec = RunSpec(code_dir, "entry.py", tmp_path / f"work-{node}", LIMITS)
            service = self.services[node]
            outcomes[node] = run_analysis(spec, service, service.output)  # as the agent does

        threads = [threading.Thread(target=one, args=(n,)) for n in nodes or self.services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        assert not any(t.is_alive() for t in threads), "a node run did not end"
        return outcomes


FEDERATED_MEAN = """
    import csv, io
    from flame.star import StarAnalyzer, StarAggregator, StarModel

    class Ages(StarAnalyzer):
        def __init__(self, flame):
            super().__init__(flame)

        def analysis_method(self, data, aggregator_results):
            rows = csv.DictReader(io.StringIO(data[0]["patients.csv"].decode()))
            ages = [float(row["age"]) for row in rows]
            return {"n": len(ages), "total": sum(ages)}

    class Mean(StarAggregator):
        def __init__(self, flame):
            super().__init__(flame)

        def aggregation_method(self, analysis_results):
            n = sum(r["n"] for r in analysis_results)
            return sum(r["total"] for r in analysis_results) / n

        def has_converged(self, result, last_result):
            return True

    StarModel(Ages, Mean, "s3", query=["patients.csv"], output_type="pickle")
"""


def test_a_federated_mean_over_confined_nodes_equals_the_pooled_mean(tmp_path):
    fed = Federation()
    outcomes = fed.run(tmp_path, FEDERATED_MEAN)
    assert all(o.ok for o in outcomes.values()), {n: o.failure for n, o in outcomes.items()}
    pooled = [age for site in fed.sites.values() for age in _ages(site)]
    assert len(fed.finals) == 1
    assert fed.finals[0].values == pytest.approx(statistics.fmean(pooled))
    assert fed.services["aggregator"].submission == fed.finals[0]
    assert ("info", "Aggregator started") in fed.logs["aggregator"]


ITERATIVE_VARIANCE = """
    import csv, io
    from flame.star import StarAnalyzer, StarAggregator, StarModel

    class Ages(StarAnalyzer):
        def __init__(self, flame):
            super().__init__(flame)

        def analysis_method(self, data, aggregator_results):
            rows = csv.DictReader(io.StringIO(data[0]["patients.csv"].decode()))
            ages = [float(row["age"]) for row in rows]
            if aggregator_results is None:
                return {"n": len(ages), "total": sum(ages)}
            mean = aggregator_results["mean"]
            return {"n": len(ages), "squares": sum((a - mean) ** 2 for a in ages)}

    class Variance(StarAggregator):
        def __init__(self, flame):
            super().__init__(flame)

        def aggregation_method(self, analysis_results):
            n = sum(r["n"] for r in analysis_results)
            if "squares" in analysis_results[0]:
                squares = sum(r["squares"] for r in analysis_results)
                return {"mean": self.latest_result["mean"], "variance": squares / (n - 1),
                        "rounds": self.num_iterations + 1}
            return {"mean": sum(r["total"] for r in analysis_results) / n}

        def has_converged(self, result, last_result):
            return "variance" in result

    StarModel(Ages, Variance, "s3", query=["patients.csv"], simple_analysis=False,
              output_type="pickle")
"""


def test_an_iterative_analysis_runs_two_rounds_between_confined_nodes(tmp_path):
    fed = Federation()
    outcomes = fed.run(tmp_path, ITERATIVE_VARIANCE)
    assert all(o.ok for o in outcomes.values()), {n: o.failure for n, o in outcomes.items()}
    pooled = [age for site in fed.sites.values() for age in _ages(site)]
    final = fed.finals[0].values
    assert final["rounds"] == 2
    assert final["mean"] == pytest.approx(statistics.fmean(pooled))
    assert final["variance"] == pytest.approx(statistics.variance(pooled))


def test_an_analyzer_returning_raw_rows_is_refused_naming_the_rule(tmp_path):
    fed = Federation(STRICT)
    code = """
        import csv, io
        from flame.star import StarAnalyzer, StarAggregator, StarModel

        class Leak(StarAnalyzer):
            def __init__(self, flame):
                super().__init__(flame)

            def analysis_method(self, data, aggregator_results):
                rows = csv.DictReader(io.StringIO(data[0]["patients.csv"].decode()))
                return [float(row["age"]) for row in rows]

        class Agg(StarAggregator):
            def __init__(self, flame):
                super().__init__(flame)

            def aggregation_method(self, analysis_results):
                return 0

            def has_converged(self, result, last_result):
                return True

        StarModel(Leak, Agg, "s3", query=["patients.csv"])
    """
    outcome = fed.run(tmp_path, code, nodes=["hospital-a"])["hospital-a"]
    assert not outcome.ok and outcome.returncode == 1
    assert "row-level" in outcome.refusal
    assert outcome.failure.startswith("PolicyRefused:")
    assert "flame_lab.errors.PolicyRefused" in outcome.failure  # the analysis saw the refusal
    assert isinstance(fed.services["hospital-a"].refusal, PolicyRefused)
    assert fed.switchboard.transport("aggregator").receive(timeout=0.1) is None  # nothing left


# -- the rules, one at a time, on the service itself ------------------------------------------
STRICT = NodePolicy(profile="strict")


@pytest.fixture
def fed():
    return Federation(STRICT)


def test_a_small_count_is_refused_under_strict_naming_rule_path_and_node_not_the_value(fed):
    node = fed.services["hospital-a"]
    with pytest.raises(PolicyRefused) as info:
        node.send_message(
            ["aggregator"], "intermediate_data", to_channel({"patients": 40, "rare": 3})
        )
    text = info.value.message
    assert "hospital-a" in text and 'result["rare"]' in text and "small-count" in text
    assert "3" not in text.replace("hospital-a", "")  # the refused value is never shown
    assert fed.switchboard.transport("aggregator").receive(timeout=0.05) is None
    (level, logged) = fed.logs["hospital-a"][-1]
    assert level == "error" and "small-count" in logged


def test_a_flame_node_releases_a_small_count_unaltered_as_a_real_flame_node_does():
    fed = Federation(NodePolicy(profile="flame"))
    node = fed.services["hospital-a"]
    node.send_message(["aggregator"], "intermediate_data", to_channel({"patients": 40, "rare": 3}))
    message = fed.switchboard.transport("aggregator").receive(timeout=1)
    assert decode_body(message.body) == {"patients": 40, "rare": 3}
    assert node.refusal is None


def test_the_aggregators_messages_are_not_subject_to_the_data_nodes_rules(fed):
    node = fed.services["aggregator"]
    node.send_message(["hospital-a"], "intermediate_data", to_channel({"rare": 3}))
    message = fed.switchboard.transport("hospital-a").receive(timeout=1)
    assert decode_body(message.body) == {"rare": 3}


def test_a_refused_message_reaches_no_one_and_is_recorded(fed):
    node = fed.services["hospital-b"]
    with pytest.raises(PolicyRefused, match="raw bytes"):
        node.send_message(["aggregator"], "intermediate_data", b"opaque")
    assert "rule opaque" in node.refusal.message
    assert fed.logs["hospital-b"][-1][0] == "error"
    assert fed.switchboard.transport("aggregator").receive(timeout=0.05) is None


def test_messages_to_nodes_outside_the_analysis_are_not_acknowledged(fed):
    node = fed.services["aggregator"]
    assert node.send_message(["stranger", "hospital-a"], "x", 1.5) == [["hospital-a"], ["stranger"]]


def test_only_the_aggregator_may_submit_a_final_result_and_only_once(fed):
    submission = submission_to_channel(FinalSubmission((ReleasedResult(1.5, "str"),)))
    with pytest.raises(PolicyRefused, match="only the aggregator"):
        fed.services["hospital-a"].submit_final_result(submission)
    assert fed.services["hospital-a"].refusal is not None
    aggregator = fed.services["aggregator"]
    assert aggregator.submit_final_result(submission) == {"status": "sealed", "files": "1"}
    assert fed.finals[0].values == 1.5
    with pytest.raises(StarError, match="already submitted"):
        aggregator.submit_final_result(submission)


def test_a_final_result_the_agent_refuses_is_recorded_as_the_runs_refusal(fed):
    def over_budget(submission):
        raise PolicyRefused("the researcher's privacy budget at this node is spent")

    aggregator = NodeService(
        fed.services["aggregator"].facts,
        None,
        NodePolicy(),
        fed.switchboard.transport("aggregator"),
        on_final=over_budget,
    )
    submission = submission_to_channel(FinalSubmission((ReleasedResult(1.5, "str"),)))
    with pytest.raises(PolicyRefused, match="budget"):
        aggregator.submit_final_result(submission)
    assert "budget" in aggregator.refusal.message


def test_data_comes_from_the_nodes_data_fhir_by_search_and_s3_by_key(fed):
    node = fed.services["hospital-a"]
    [fhir] = node.get_fhir_data(["Patient?gender=female"])
    bundle = fhir["Patient?gender=female"]
    assert bundle["resourceType"] == "Bundle"
    assert all(e["resource"]["gender"] == "female" for e in bundle["entry"])
    [everything] = node.get_fhir_data([])
    assert set(everything) == {"Patient", "Encounter", "Condition", "Observation"}
    [objects] = node.get_s3_data(["patients.csv"])
    assert objects == {"patients.csv": fed.sites["hospital-a"].tables["patients.csv"]}
    assert node.get_s3_data([]) == [dict(fed.sites["hospital-a"].tables)]
    with pytest.raises(NodeDataError, match=r"missing\.csv"):
        node.get_s3_data(["missing.csv"])
    with pytest.raises(StarError, match="list of strings"):
        node.get_s3_data("patients.csv")
    assert fed.services["aggregator"].get_s3_data([]) is None
    assert fed.services["aggregator"].hello()["data_sources"] == []
    assert node.hello()["participant_ids"] == ["hospital-b", "aggregator"]


@pytest.mark.parametrize(
    ("log_type", "level"),
    [
        ("normal", "info"),
        ("info", "info"),
        ("debug", "debug"),
        ("warning", "warn"),
        ("error", "error"),
        ("critical", "crit"),
        ("emergency", "emerg"),
        ("alert", "alert"),
        ("notice", "notice"),
        ("made-up", "info"),
    ],
)
def test_sdk_log_types_map_to_the_hubs_levels(log_type, level):
    assert hub_level(log_type) == level


def test_progress_is_clamped_and_never_goes_back(fed):
    node = fed.services["hospital-a"]
    for value in (10, 5, 150, 40, -3):
        node.set_progress(value)
    assert fed.progress["hospital-a"] == [10, 100] and node.get_progress() == 100
    with pytest.raises(StarError):
        node.set_progress("half")


def test_waiting_for_messages_ends_after_the_timeout_or_when_the_run_ends(fed):
    node = fed.services["hospital-a"]
    assert node.receive_message(0.05) is None
    closer = threading.Timer(0.2, node.close)
    closer.start()
    assert node.receive_message(None) is None  # would wait forever without close()
    closer.join()


def test_message_bodies_travel_between_nodes_as_bytes_without_pickle():
    body = encode_body({"counts": (1, 2), 3: b"\x00"})
    assert isinstance(body, bytes) and b"pickle" not in body
    assert decode_body(body) == {"counts": (1, 2), 3: b"\x00"}
    import pickle

    with pytest.raises(Exception, match="could not be read"):
        decode_body(pickle.dumps({"x": 1}))


# -- logs, stdout, tracebacks and progress are releases too -----------------------------------
LOUD_ANALYSIS = """
    import csv, io, sys
    from flame.star import StarAnalyzer, StarAggregator, StarModel

    class Loud(StarAnalyzer):
        def __init__(self, flame):
            super().__init__(flame)

        def analysis_method(self, data, aggregator_results):
            rows = list(csv.DictReader(io.StringIO(data[0]["patients.csv"].decode())))
            ages = [int(row["age"]) for row in rows]
            self.flame.set_progress(ages[0])
            WAY
            return {"n": len(ages), "total": float(sum(ages))}

    class Agg(StarAggregator):
        def __init__(self, flame):
            super().__init__(flame)

        def aggregation_method(self, analysis_results):
            return 0.5

        def has_converged(self, result, last_result):
            return True

    StarModel(Loud, Agg, "s3", query=["patients.csv"])
"""
WAYS = {
    "print(row) per row": "for age in ages: print(age)",
    "flame_log(repr(rows))": "self.flame.flame_log(repr(ages))",
    "stderr": "print(ages, file=sys.stderr)",
    "raise ValueError(rows)": "raise ValueError(ages)",
}


@pytest.mark.parametrize("way", list(WAYS))
def test_rows_in_logs_output_or_an_exception_are_refused_by_a_strict_node(tmp_path, way):
    fed = Federation(STRICT)
    fed.run(tmp_path, LOUD_ANALYSIS.replace("WAY", WAYS[way]), nodes=["hospital-a"])
    service = fed.services["hospital-a"]
    assert service.refusal is not None, way
    assert "hospital-a" in service.refusal.message and "rule" in service.refusal.message
    ages = _ages(fed.sites["hospital-a"])
    forwarded = " ".join(text for _, text in fed.logs["hospital-a"])
    assert repr(ages) not in forwarded and repr(ages[:5])[:-1] not in forwarded
    assert len(ages) > 20 and sum(f" {a}" in f" {forwarded} " for a in set(ages)) < len(set(ages))


@pytest.mark.parametrize("way", list(WAYS))
def test_a_flame_node_forwards_the_same_lines_as_a_real_flame_node(tmp_path, way):
    fed = Federation(NodePolicy())
    fed.run(tmp_path, LOUD_ANALYSIS.replace("WAY", WAYS[way]), nodes=["hospital-a"])
    assert fed.services["hospital-a"].refusal is None
    forwarded = "\n".join(text for _, text in fed.logs["hospital-a"])
    assert (
        str(_ages(fed.sites["hospital-a"])[7]) in forwarded
    )  # unaltered (and sealed by the agent)


def test_progress_carrying_an_age_is_reported_in_steps_by_a_strict_node(tmp_path):
    fed = Federation(STRICT)
    fed.run(tmp_path, LOUD_ANALYSIS.replace("WAY", "pass"), nodes=["hospital-a"])
    age = _ages(fed.sites["hospital-a"])[0]
    assert fed.progress["hospital-a"] == [age - age % 10]
