"""The [limits] table: whole-run bounds, refused when mistyped, written and read back."""

from __future__ import annotations

import pytest

from flame_lab.errors import PolicyFileError
from flame_lab.limits import ResourceLimits
from flame_lab.privacy import NodePolicy, dump_policy, load_policy


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
