"""The [limits] table: whole-run bounds, refused when mistyped, written and read back."""

from __future__ import annotations

import socket
import threading

import pytest

from flame_lab.errors import PolicyFileError
from flame_lab.limits import (
    CALL_ROOM_BYTES,
    DEFAULT_RELEASE_BYTES,
    MIB,
    ResourceLimits,
    frame_bytes_for,
    release_bytes_carried,
)
from flame_lab.privacy import DisclosurePolicy, NodePolicy, dump_policy, load_policy
from flame_lab.sandbox.node.ipc import ChannelClosed, RemoteError
from flame_lab.star.runtime import FinalSubmission, ReleasedResult


def test_limits_round_trip_through_policy_toml(tmp_path):
    limits = ResourceLimits(processes=8, open_files=256, disk_mib=64, max_messages=3)
    path = tmp_path / "policy.toml"
    dump_policy(NodePolicy(limits=limits), path)
    assert load_policy(path).limits == limits
    assert "allow_unconfined = false" in path.read_text()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("processes", 1, "at least 2"),
        ("max_frame_bytes", 0, "greater than 0"),
        ("disk_mib", 1.5, "whole number"),
        ("allow_unconfined", "yes", "true or false"),
        ("open_files", True, "whole number"),
    ],
)
def test_a_wrong_limit_is_refused_with_its_name(tmp_path, key, value, words):
    path = tmp_path / "policy.json"
    path.write_text(f'{{"limits": {{"{key}": {__import__("json").dumps(value)}}}}}')
    with pytest.raises(PolicyFileError, match=words) as info:
        load_policy(path)
    assert f"limits.{key}" in info.value.message


def test_an_unknown_limit_is_refused_not_ignored(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("[limits]\nallow_unconfind = true\n")
    with pytest.raises(PolicyFileError, match="allow_unconfind"):
        load_policy(path)


def test_open_files_are_split_among_the_runs_processes():
    assert ResourceLimits(open_files=4096, processes=64).files_per_process == 64
    assert ResourceLimits(open_files=10, processes=64).files_per_process == 1


# -- one release fits one call (issue 17: 64 MiB allowed, ~24 MiB carried) ---------------------
def test_the_default_release_bound_fits_one_call_exactly():
    policy = NodePolicy()
    assert policy.disclosure.max_release_bytes == DEFAULT_RELEASE_BYTES == 24 * MIB
    assert policy.limits.max_frame_bytes == frame_bytes_for(DEFAULT_RELEASE_BYTES)
    assert policy.limits.max_frame_bytes == 32 * MIB + 64 * 1024
    assert release_bytes_carried(policy.limits.max_frame_bytes) == DEFAULT_RELEASE_BYTES
    assert release_bytes_carried(policy.limits.max_frame_bytes - 1) < DEFAULT_RELEASE_BYTES


def test_a_release_bound_the_frame_cannot_carry_is_refused_with_both_numbers():
    with pytest.raises(PolicyFileError) as info:
        NodePolicy(disclosure=DisclosurePolicy(max_release_bytes=64 * MIB))
    assert "disclosure.max_release_bytes (67108864)" in info.value.message
    assert f"limits.max_frame_bytes ({32 * MIB + 64 * 1024})" in info.value.message
    assert f"Raise limits.max_frame_bytes to {frame_bytes_for(64 * MIB)}" in info.value.hint
    big = ResourceLimits(max_frame_bytes=frame_bytes_for(64 * MIB))
    NodePolicy(disclosure=DisclosurePolicy(max_release_bytes=64 * MIB), limits=big)
    # a smaller frame needs a smaller release bound; 0 leaves the frame as the only bound
    with pytest.raises(PolicyFileError, match="max_release_bytes"):
        NodePolicy(limits=ResourceLimits(max_frame_bytes=MIB))
    NodePolicy(disclosure=DisclosurePolicy(max_release_bytes=0), limits=ResourceLimits(1))


def test_a_policy_file_with_the_former_defaults_is_read_with_todays(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        "[disclosure]\nmax_release_bytes = 67108864\n[limits]\nmax_frame_bytes = 33554432\n"
    )
    policy = load_policy(path)
    assert policy.disclosure.max_release_bytes == DEFAULT_RELEASE_BYTES
    assert policy.limits.max_frame_bytes == frame_bytes_for(DEFAULT_RELEASE_BYTES)
    path.write_text("[disclosure]\nmax_release_bytes = 67108864\n")  # a steward's own choice
    with pytest.raises(PolicyFileError) as info:
        load_policy(path)
    assert str(path) in info.value.message and "Raise limits.max_frame_bytes" in info.value.hint


def _submit_through_a_node_channel(policy: NodePolicy, value: bytes) -> dict:
    """The aggregator's submit_final_result as on a node: the real call over a socket, read
    under the policy's frame bound, then the node's release channel."""
    from flame_lab.release.channel import ReleaseChannel
    from flame_lab.sandbox.node.ipc import Channel, RpcClient, serve
    from flame_lab.sandbox.node.runtime_client import (
        submission_from_channel,
        submission_to_channel,
    )

    release = ReleaseChannel(policy, node="agg", role="aggregator", record_count=1000)

    def submit_final_result(submission):
        final = release.final(submission_from_channel(submission))
        return {"status": "success", "size": len(final.results[0].value)}

    node_end, analysis_end = socket.socketpair()
    node = Channel(node_end, max_frame=policy.limits.max_frame_bytes)

    def answer_until_refused_or_closed() -> None:
        serve(node, {"submit_final_result": submit_final_result})
        node.close()  # as the node ends a run that broke the protocol

    server = threading.Thread(target=answer_until_refused_or_closed)
    server.start()
    try:
        submission = FinalSubmission((ReleasedResult(value, "bytes", "result.bin"),))
        return RpcClient(Channel(analysis_end)).call(
            "submit_final_result", submission=submission_to_channel(submission)
        )
    finally:
        analysis_end.close()
        server.join()


@pytest.mark.parametrize(
    "policy",
    [
        NodePolicy(),  # flame profile, the defaults: 24 MiB
        NodePolicy(
            profile="strict",
            disclosure=DisclosurePolicy(max_release_bytes=1000),
            limits=ResourceLimits(max_frame_bytes=frame_bytes_for(1000)),
        ),
    ],
    ids=["flame-defaults", "strict-1000"],
)
def test_a_final_result_of_exactly_the_release_bound_arrives_and_one_byte_more_is_refused_by_it(
    policy,
):
    limit = policy.disclosure.max_release_bytes
    answer = _submit_through_a_node_channel(policy, b"\x00" * limit)
    assert answer == {"status": "success", "size": limit}
    with pytest.raises(RemoteError) as info:
        _submit_through_a_node_channel(policy, b"\x00" * (limit + 1))
    assert info.value.kind == "PolicyRefused"  # the rule the policy states, not the frame
    assert f"is {limit + 1} bytes; this node lets at most {limit} leave" in info.value.message
    assert "max_frame_bytes" not in info.value.message


def test_the_frame_still_refuses_what_exceeds_it_before_reading_it():
    from flame_lab.sandbox.node.ipc import FrameRefused

    policy = NodePolicy(disclosure=DisclosurePolicy(max_release_bytes=0))
    carried = release_bytes_carried(policy.limits.max_frame_bytes)
    with pytest.raises(ChannelClosed):  # the node hangs up on an oversized call
        _submit_through_a_node_channel(policy, b"\x00" * (carried + CALL_ROOM_BYTES))
    assert issubclass(FrameRefused, ChannelClosed)
