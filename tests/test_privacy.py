"""Node policy files: profile, disclosure, release, DP settings and limits; unknown keys refused."""

from __future__ import annotations

import pytest

from flame_lab.errors import FlameLabError, PolicyFileError
from flame_lab.privacy import (
    DisclosurePolicy,
    DPRules,
    NodePolicy,
    ReleaseRules,
    ResourceLimits,
    dump_policy,
    load_policy,
)


# -- node policy files ----------------------------------------------------------------------
def test_node_policy_defaults_are_cautious():
    policy = NodePolicy()
    assert policy.approval == "manual"
    assert policy.disclosure.min_records == 5 and policy.disclosure.count_threshold == 5
    assert policy.epsilon_per_researcher > 0 and policy.limits.wall_seconds > 0


@pytest.mark.parametrize("name", ["policy.toml", "policy.json"])
def test_policy_round_trips_through_a_file(tmp_path, name):
    policy = NodePolicy(
        approval="auto",
        disclosure=DisclosurePolicy(min_records=10, min_count=3, max_release_bytes=0),
        epsilon_per_researcher=2.5,
        limits=ResourceLimits(cpu_seconds=30, memory_mib=256, wall_seconds=60),
    )
    dump_policy(policy, tmp_path / name)
    assert load_policy(tmp_path / name) == policy


def test_default_policy_round_trips_as_toml(tmp_path):
    dump_policy(NodePolicy(), tmp_path / "policy.toml")
    assert load_policy(tmp_path / "policy.toml") == NodePolicy()


def test_a_partial_policy_file_takes_defaults_for_the_rest(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('approval = "auto"\n[disclosure]\nmin_records = 20\n')
    policy = load_policy(path)
    assert policy.approval == "auto" and policy.disclosure.min_records == 20
    assert policy.limits == ResourceLimits()


def test_missing_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyFileError, match="No policy file") as info:
        load_policy(tmp_path / "absent.toml")
    assert "dump_policy" in info.value.hint


def test_malformed_toml_names_the_file(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("approval = \n")
    with pytest.raises(PolicyFileError, match="not valid TOML") as info:
        load_policy(path)
    assert str(path) in info.value.message


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text("{")
    with pytest.raises(PolicyFileError, match="not valid JSON"):
        load_policy(path)


def test_a_misspelt_setting_is_refused_not_ignored(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("[disclosure]\nmin_record = 1\n")
    with pytest.raises(PolicyFileError, match="min_record") as info:
        load_policy(path)
    assert "min_records" in info.value.hint


def test_an_unknown_section_is_refused(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("[network]\nopen = true\n")
    with pytest.raises(PolicyFileError, match="network"):
        load_policy(path)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('approval = "sometimes"\n', "approval"),
        ("[disclosure]\nmin_records = 0\n", "greater than 0"),
        ('[disclosure]\nmin_records = "5"\n', "whole number"),
        ("[disclosure]\nmin_records = 5.5\n", "whole number"),
        ('[disclosure]\nrefuse_row_level = "no"\n', "true or false"),
        ("[privacy]\nepsilon_per_researcher = -1.0\n", "greater than 0"),
        ("[limits]\nmemory_mib = true\n", "whole number"),
        ("disclosure = 3\n", "must be a table"),
    ],
)
def test_bad_values_in_a_policy_file_are_refused_naming_the_file(tmp_path, text, words):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyFileError, match=words) as info:
        load_policy(path)
    assert str(path) in info.value.message


def test_policy_errors_belong_to_the_one_error_tree():
    assert issubclass(PolicyFileError, FlameLabError)


# -- profiles, release rules and the node's DP parameters -------------------------------------
def test_the_default_profile_is_flame_and_strict_round_trips(tmp_path):
    assert NodePolicy().profile == "flame"
    policy = NodePolicy(
        profile="strict",
        release=ReleaseRules(max_label_chars=20, analysis_logs="node", log_lines=10),
        dp=DPRules(require_dp=True, max_epsilon_per_release=0.5, clip_lower=0.0, clip_upper=120),
    )
    dump_policy(policy, tmp_path / "policy.toml")
    assert load_policy(tmp_path / "policy.toml") == policy


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('profile = "lenient"\n', "profile must be one of flame, strict"),
        ('[release]\nanalysis_logs = "hub"\n', "analysis_logs"),
        ("[release]\nmax_values_ratio = 0\n", "max_values_ratio"),
        ("[release]\nlog_line = 5\n", "unknown setting(s) log_line"),
        ("[privacy]\nrequire_dp = 1\n", "require_dp must be true or false"),
        ("[privacy]\nclip_lower = 1.0\n", "go together"),
        ("[privacy]\nclip_lower = 5.0\nclip_upper = 1.0\n", "below"),
        ("[privacy]\nmin_sensitivity = -1.0\n", "min_sensitivity"),
    ],
)
def test_bad_release_and_dp_settings_are_refused(tmp_path, text, words):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as info:
        load_policy(path)
    assert words in info.value.message
