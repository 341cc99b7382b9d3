"""Values cross the analysis channel intact and without pickle; node errors keep their hint."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from flame_lab.errors import (
    FhirQueryError,
    NodeDataError,
    PayloadError,
    PolicyRefused,
    StarError,
)
from flame_lab.privacy import NodePolicy
from flame_lab.sandbox.node.datasets import NodeData
from flame_lab.sandbox.node.ipc import Channel, RemoteError, RpcClient, serve
from flame_lab.sandbox.node.runtime_client import (
    AgentRuntime,
    connect_fd,
    from_channel,
    submission_from_channel,
    submission_to_channel,
    to_channel,
)
from flame_lab.sandbox.node.service import NodeFacts, NodeService, Switchboard
from flame_lab.sandbox.node.synthetic import generate
from flame_lab.star.runtime import FinalSubmission, LocalDP, ReleasedResult, Runtime


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield Channel(a), Channel(b)
    a.close()
    b.close()


def _across(pair, value):
    """``value`` converted, sent as a real frame, received and converted back."""
    left, right = pair
    left.send({"v": to_channel(value)})
    return from_channel(right.recv()["v"])


def test_plain_values_bytes_tuples_and_any_dict_keys_survive_the_channel(pair):
    value = {
        "n": 3,
        "mean": 1.25,
        "nan": float("inf"),
        "ok": True,
        "none": None,
        "blob": b"\x00\xff",
        "pair": (1, "a"),
        "nested": [{"deep": (b"x", [1, 2])}],
        "$b64": "a user key that looks like a tag",
        7: "an int key",
        (1, 2): "a tuple key",
    }
    back = _across(pair, value)
    assert back == value
    assert isinstance(back["pair"], tuple) and isinstance(back["nested"][0]["deep"], tuple)


def test_numpy_scalars_become_python_numbers_and_arrays_keep_dtype_and_shape(pair):
    assert _across(pair, np.int64(7)) == 7 and type(_across(pair, np.int64(7))) is int
    assert type(_across(pair, np.float32(0.5))) is float
    assert _across(pair, np.bool_(True)) is True
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    back = _across(pair, {"counts": array})["counts"]
    assert back.dtype == np.int16 and back.shape == (3, 4)
    np.testing.assert_array_equal(back, array)


def test_dataframes_survive_the_channel(pair):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"site": ["a", "b"], "n": [10, 20], "mean": [1.5, 2.5]})
    back = _across(pair, frame)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), frame, check_dtype=False)


@pytest.mark.parametrize("value", [{1, 2}, object(), np.array([object()]), lambda: 1])
def test_values_the_channel_cannot_carry_are_refused_not_pickled(value):
    with pytest.raises(PayloadError) as info:
        to_channel(value)
    assert info.value.hint


@pytest.mark.parametrize(
    "forged",
    [
        {"$pickle": "gASV"},
        {"$payload": {"type": "application/python-pickle", "data": b"\x80\x04"}},
        {"$payload": {"type": "application/x-npy", "data": "not bytes"}},
        {"$dict": [[1]]},
        {"$dict": [[[1, 2], "a list key"]]},
    ],
)
def test_forged_or_unknown_tags_from_the_other_side_are_refused(forged):
    with pytest.raises(PayloadError):
        from_channel(forged)


def test_a_pickled_array_is_never_loaded():
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    forged = {"$payload": {"type": "application/x-npy", "data": buf.getvalue()}}
    with pytest.raises(PayloadError):
        from_channel(forged)


def test_a_final_submission_survives_the_channel(pair):
    submission = FinalSubmission(
        (
            ReleasedResult({"mean": 1.5}, "pickle", "mean.json"),
            ReleasedResult(np.array([1.0, 2.0]), "pickle"),
            ReleasedResult("text", "str"),
        ),
        multiple_results=True,
        local_dp=LocalDP(epsilon=1.0, sensitivity=2.0),
    )
    left, right = pair
    left.send({"s": submission_to_channel(submission)})
    back = submission_from_channel(right.recv()["s"])
    assert back.multiple_results and back.local_dp == submission.local_dp
    assert back.results[0] == submission.results[0] and back.results[2] == submission.results[2]
    np.testing.assert_array_equal(back.results[1].value, submission.results[1].value)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"results": []},
        {"results": [{"value": 1, "output_type": "exe"}]},
        {"results": [{"value": 1, "output_type": "str", "filename": 3}]},
        {"results": [{"value": 1, "output_type": "str"}], "local_dp": {"epsilon": "1"}},
    ],
)
def test_a_malformed_final_submission_is_refused(bad):
    with pytest.raises(PayloadError, match="final result"):
        submission_from_channel(bad)


# -- the runtime over a real channel to a real service ------------------------------------------
@pytest.fixture
def runtime(pair):
    agent, analysis = pair
    switchboard = Switchboard()
    service = NodeService(
        NodeFacts("site-a", "default", ("agg",), "agg", "analysis-9", "project-3"),
        NodeData.from_site(generate("site-a", n_patients=20)),
        NodePolicy(profile="strict"),
        switchboard.transport("site-a"),
    )
    calls: list[str] = []

    def counted(name, func):
        def call(**params):
            calls.append(name)
            return func(**params)

        return call

    methods = {name: counted(name, func) for name, func in service.methods().items()}
    thread = threading.Thread(target=serve, args=(agent, methods), daemon=True)
    thread.start()
    rt = AgentRuntime(RpcClient(analysis))
    rt.calls = calls
    rt.peer = switchboard.transport("agg")
    return rt


def test_the_agent_runtime_is_a_star_runtime_and_asks_for_static_facts_once(runtime):
    assert isinstance(runtime, Runtime)
    assert (runtime.get_id(), runtime.get_role(), runtime.get_aggregator_id()) == (
        "site-a",
        "default",
        "agg",
    )
    assert runtime.get_participant_ids() == ["agg"]
    assert (runtime.get_analysis_id(), runtime.get_project_id()) == ("analysis-9", "project-3")
    assert runtime.get_data_sources() == ["s3", "fhir"]
    assert runtime.calls.count("hello") == 1
    assert runtime.random_generator() is None


def test_messages_go_out_and_come_back_as_python_values(runtime):
    acked, not_acked = runtime.send_message(["agg"], "intermediate_data", {"n": np.int64(20)})
    assert (acked, not_acked) == (["agg"], [])
    runtime.peer.send(["site-a"], "intermediate_data", b'{"mean":{"$tuple":[1.5,2]}}')
    message = runtime.receive_message(timeout=5)
    assert (message.sender, message.category, message.body) == (
        "agg",
        "intermediate_data",
        {"mean": (1.5, 2)},
    )
    assert runtime.receive_message(timeout=0.05) is None


def test_node_errors_arrive_as_the_same_class_with_message_and_hint(runtime):
    with pytest.raises(NodeDataError) as info:
        runtime.get_s3_data(["absent.csv"])
    assert "absent.csv" in info.value.message and "Available" in info.value.hint
    with pytest.raises(FhirQueryError) as info:
        runtime.get_fhir_data(["Spaceship?_count=1"])
    assert "Spaceship" in info.value.message and info.value.hint
    with pytest.raises(PolicyRefused) as info:
        runtime.send_message(["agg"], "intermediate_data", list(range(50)))
    assert "row-level" in info.value.message and "aggregates" in info.value.hint


def test_unknown_remote_failures_stay_remote_errors(pair):
    agent, analysis = pair
    threading.Thread(target=serve, args=(agent, {}), daemon=True).start()
    with pytest.raises(RemoteError) as info:
        AgentRuntime(RpcClient(analysis)).get_progress()
    assert info.value.kind == "UnknownMethod"


def test_the_fd_connector_speaks_over_an_inherited_socket():
    agent, analysis = socket.socketpair()
    try:
        threading.Thread(
            target=serve, args=(Channel(agent), {"get_progress": lambda: 42}), daemon=True
        ).start()
        runtime = connect_fd(str(analysis.detach()))
        assert runtime.get_progress() == 42
        with pytest.raises(StarError, match="unusable runtime channel"):
            connect_fd("three")
    finally:
        agent.close()
