"""FlameCoreSDK's lower-level calls behave as the SDK's do, over any runtime."""

from __future__ import annotations

import pytest

from flame_lab.errors import StarError
from flame_lab.star import FlameCoreSDK, StarAggregator, StarAnalyzer, StarModelTester
from flame_lab.star.inprocess import InProcessFederation, NodeSpec


def federation() -> InProcessFederation:
    return InProcessFederation(
        [
            NodeSpec("a", "default", [{"x.csv": b"1"}]),
            NodeSpec("b", "default", [{"x.csv": b"2"}]),
            NodeSpec("agg", "aggregator"),
        ],
        data_type="s3",
        analysis_id="an-1",
        project_id="pr-1",
    )


def test_identity_calls_describe_this_node_and_its_partners():
    flame = FlameCoreSDK(federation().runtime("a"))
    assert (flame.get_id(), flame.get_role()) == ("a", "default")
    assert flame.get_participant_ids() == ["b", "agg"]
    assert flame.get_aggregator_id() == "agg"
    assert (flame.get_analysis_id(), flame.get_project_id()) == ("an-1", "pr-1")
    assert flame.get_participants() == [
        {"nodeId": "b", "nodeType": "default"},
        {"nodeId": "agg", "nodeType": "aggregator"},
    ]
    assert flame.get_data_sources() == ["s3-source-0"]
    assert flame.get_s3_data() == [{"x.csv": b"1"}]


def test_messages_are_matched_by_sender_and_category_and_kept_until_awaited():
    fed = federation()
    a, b = FlameCoreSDK(fed.runtime("a")), FlameCoreSDK(fed.runtime("b"))
    a.send_message(["b"], "other", {"n": 0})
    a.send_message(["b"], "counts", {"n": 1})
    got = b.await_messages(["a"], "counts")
    assert [m.body for m in got["a"]] == [{"n": 1}]
    assert [m.body for m in b.await_messages(["a"], "other")["a"]] == [{"n": 0}]


def test_await_messages_returns_none_for_silent_senders_after_the_timeout():
    flame = FlameCoreSDK(federation().runtime("a"))
    assert flame.await_messages(["b"], "counts", timeout=0) == {"b": None}


def test_message_bodies_are_copies_as_across_a_network():
    fed = federation()
    body = {"values": [1, 2]}
    FlameCoreSDK(fed.runtime("a")).send_intermediate_data(["agg"], body)
    body["values"].append(3)
    assert FlameCoreSDK(fed.runtime("agg")).await_intermediate_data(["a"]) == {
        "a": {"values": [1, 2]}
    }


def test_messages_to_unknown_nodes_are_refused():
    flame = FlameCoreSDK(federation().runtime("a"))
    with pytest.raises(StarError, match="not another node"):
        flame.send_message(["zz"], "c", {})
    with pytest.raises(StarError, match="list"):
        flame.await_messages("b", "c")


def test_progress_only_moves_forward_within_0_to_100():
    fed = federation()
    flame = FlameCoreSDK(fed.runtime("a"))
    flame.set_progress(40.7)
    flame.set_progress(40)  # the same value again is no step back (as in flamesdk)
    flame.set_progress(30)
    flame.set_progress(150)
    assert flame.get_progress() == 40
    assert [e.log_type for e in fed.logs] == ["warn", "warn"]


def test_logs_accept_bytes_iterables_and_the_sdk_defaults():
    fed = federation()
    flame = FlameCoreSDK(fed.runtime("a"))
    flame.flame_log(b"raw \x00bytes")
    flame.flame_log(["a", "b"], sep="-", end="!")
    flame.flame_log("loud", log_type="notice")
    assert [(e.message, e.log_type) for e in fed.logs] == [
        ("raw bytes", "info"),
        ("a-b!", "info"),
        ("loud", "notice"),
    ]


def test_a_held_line_goes_out_in_front_of_the_next_appended_one():
    fed = federation()
    flame = FlameCoreSDK(fed.runtime("a"))
    flame.flame_log("Connecting...", halt_submission=True)
    assert fed.logs == []
    flame.flame_log("success", append=True)
    flame.flame_log("plain", append=True)
    assert [e.message for e in fed.logs] == ["Connecting...success", "plain"]


@pytest.mark.parametrize("log_type", ["warning", "normal", "critical", "WARN", "emergency", ""])
def test_a_log_type_the_real_sdk_does_not_know_fails_like_on_a_node(log_type):
    fed = federation()
    flame = FlameCoreSDK(fed.runtime("a"))
    with pytest.raises(StarError, match="fails the analysis on a FLAME node") as caught:
        flame.flame_log("x", log_type=log_type)
    assert "'warn'" in caught.value.hint
    assert fed.logs == []


def test_logging_an_error_ends_the_run_as_flamesdk_does():
    fed = federation()
    flame = FlameCoreSDK(fed.runtime("a"))
    with pytest.raises(StarError, match="logged an error and ends"):
        flame.flame_log("bad input", log_type="error")
    assert [(e.message, e.log_type) for e in fed.logs] == [("bad input", "error")]


def test_a_message_that_is_not_text_fails_as_on_a_node():
    flame = FlameCoreSDK(federation().runtime("a"))
    with pytest.raises(StarError, match="neither text"):
        flame.flame_log(42)


def test_declare_log_types_is_gone_as_in_flamesdk_0_6():
    flame = FlameCoreSDK(federation().runtime("a"))
    assert not hasattr(flame, "declare_log_types")


def test_only_the_aggregator_may_submit_a_final_result():
    flame = FlameCoreSDK(federation().runtime("a"))
    with pytest.raises(StarError, match="only the aggregator"):
        flame.submit_final_result(1.0)


class ChattyAnalyzer(StarAnalyzer):
    """Uses the lower-level calls: custom messages between analyzers, progress, logs."""

    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        peers = [p for p in self.partner_node_ids if p != self.flame.get_aggregator_id()]
        self.flame.send_message(peers, "hello", {"from": self.id})
        heard = self.flame.await_messages(peers, "hello")
        self.flame.set_progress(50)
        self.flame.flame_log(f"heard from {sorted(heard)}", log_type="info")
        return len(heard)


class SumAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return sum(analysis_results)

    def has_converged(self, result, last_result):
        return True


def test_analysis_code_can_message_between_analyzers_under_the_tester():
    tester = StarModelTester([[1], [2], [3]], ChattyAnalyzer, SumAggregator, "s3", quiet=True)
    assert tester.result == "6"
    assert any(e.message == "heard from ['node_1', 'node_2']" for e in tester.logs)


def test_star_nodes_refuse_a_node_of_the_other_role():
    fed = federation()
    with pytest.raises(StarError, match="role"):
        ChattyAnalyzer(FlameCoreSDK(fed.runtime("agg")))
    with pytest.raises(StarError, match="role"):
        SumAggregator(FlameCoreSDK(fed.runtime("a")))
