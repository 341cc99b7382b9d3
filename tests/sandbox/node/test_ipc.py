"""The node agent and the analysis process talk in JSON frames, never pickles."""

from __future__ import annotations

import socket
import threading

import pytest

from flame_lab.errors import PolicyRefused
from flame_lab.sandbox.node.ipc import Channel, ChannelClosed, RemoteError, RpcClient, serve


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield Channel(a), Channel(b)
    a.close()
    b.close()


def _serve_in_thread(channel, methods):
    thread = threading.Thread(target=serve, args=(channel, methods), daemon=True)
    thread.start()
    return thread


def test_bytes_and_nested_values_survive_the_trip(pair):
    left, right = pair
    left.send({"data": {"a.csv": b"x,y\n1,2\n"}, "n": [1, 2.5, None, True]})
    assert right.recv() == {"data": {"a.csv": b"x,y\n1,2\n"}, "n": [1, 2.5, None, True]}


def test_calls_return_results_and_carry_flame_lab_errors_with_their_hint(pair):
    agent, analysis = pair

    def refuse(**_):
        raise PolicyRefused("too few records", hint="aggregate more")

    thread = _serve_in_thread(agent, {"echo": lambda value: value, "refuse": refuse})
    client = RpcClient(analysis)
    assert client.call("echo", value=b"\x00\x01") == b"\x00\x01"
    with pytest.raises(RemoteError) as info:
        client.call("refuse")
    assert (info.value.kind, info.value.message, info.value.hint) == (
        "PolicyRefused",
        "too few records",
        "aggregate more",
    )
    analysis.close()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_unknown_methods_and_bad_arguments_are_errors_not_crashes(pair):
    agent, analysis = pair
    _serve_in_thread(agent, {"echo": lambda value: value})
    client = RpcClient(analysis)
    with pytest.raises(RemoteError, match="nope"):
        client.call("nope")
    with pytest.raises(RemoteError) as info:
        client.call("echo", wrong=1)
    assert info.value.kind == "TypeError"
    assert client.call("echo", value=3) == 3


def test_a_failing_handler_reports_an_internal_error_without_its_details(pair):
    agent, analysis = pair

    def broken():
        raise RuntimeError("secret internals")

    _serve_in_thread(agent, {"broken": broken})
    with pytest.raises(RemoteError) as info:
        RpcClient(analysis).call("broken")
    assert info.value.kind == "InternalError"
    assert "secret internals" not in info.value.message


def test_a_closed_peer_is_reported_as_channel_closed(pair):
    left, right = pair
    left.close()
    with pytest.raises(ChannelClosed):
        right.recv()


def test_malformed_and_oversized_frames_are_refused(pair):
    left, right = pair
    left.sock.sendall((5).to_bytes(4, "big") + b"nope!")
    with pytest.raises(ChannelClosed, match="malformed"):
        right.recv()
    left.sock.sendall((2**31).to_bytes(4, "big"))
    with pytest.raises(ChannelClosed, match="reads at most"):
        right.recv()


def test_a_pickle_is_never_loaded(pair):
    import pickle

    left, right = pair
    blob = pickle.dumps({"x": 1})
    left.sock.sendall(len(blob).to_bytes(4, "big") + blob)
    with pytest.raises(ChannelClosed):
        right.recv()


def test_a_frame_with_malformed_bytes_or_absurd_nesting_closes_instead_of_crashing(pair):
    left, right = pair
    for frame in (b'{"x":{"$b64":5}}', b'{"x":{"$b64":"%%%"}}', b'{"x":' + b"[" * 100000):
        left.sock.sendall(len(frame).to_bytes(4, "big") + frame)
        with pytest.raises(ChannelClosed):
            right.recv()


def test_to_json_spells_bytes_as_plain_json_and_from_json_reads_them_back():
    import json

    from flame_lab.sandbox.node.ipc import from_json, to_json

    text = json.dumps(to_json({"blob": b"\x00\x01", "n": [1, b"z"]}))
    assert from_json(json.loads(text)) == {"blob": b"\x00\x01", "n": [1, b"z"]}
