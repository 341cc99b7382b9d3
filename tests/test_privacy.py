"""Disclosure rules, node policy files, Laplace noise and the per-researcher privacy budget."""

from __future__ import annotations

import json
import math
import os
import threading
from collections import namedtuple

import numpy as np
import pandas as pd
import pytest

from flame_lab.errors import DPParameterError, FlameLabError, PolicyFileError, PolicyRefused
from flame_lab.privacy import (
    DisclosurePolicy,
    NodePolicy,
    PrivacyBudget,
    ResourceLimits,
    add_laplace_noise,
    check_release,
    dump_policy,
    load_policy,
)

POLICY = DisclosurePolicy()  # min_records = 5, counts 1..4 suppressed


# -- check_release: the rules ---------------------------------------------------------------
def test_small_counts_are_suppressed_and_their_locations_listed():
    result = {"n": 120, "by_sex": {"female": 64, "male": 53, "other": 3}}
    release = check_release(result, record_count=120, policy=POLICY)
    assert release.value == {"n": 120, "by_sex": {"female": 64, "male": 53, "other": None}}
    assert release.suppressed == ["$.by_sex.other"]
    assert "$.by_sex.other" in release.describe()


def test_zero_and_counts_at_the_threshold_are_released():
    release = check_release({"a": 0, "b": 5, "c": 4}, record_count=50, policy=POLICY)
    assert release.value == {"a": 0, "b": 5, "c": None}


def test_negative_numbers_booleans_and_floats_are_not_counts():
    result = {"delta": -2, "converged": True, "mean_age": 3.0, "coef": 1.5}
    release = check_release(result, record_count=50, policy=POLICY)
    assert release.value == result
    assert release.suppressed == []


def test_min_count_can_differ_from_min_records():
    policy = DisclosurePolicy(min_records=10, min_count=3)
    release = check_release([2, 3], record_count=50, policy=policy)
    assert release.value == [None, 3]


def test_suppression_can_be_switched_off_by_the_steward():
    policy = DisclosurePolicy(suppress_small_counts=False)
    assert check_release({"x": 1}, record_count=50, policy=policy).value == {"x": 1}


def test_a_bare_small_count_is_suppressed_at_the_root():
    release = check_release(2, record_count=50, policy=POLICY)
    assert release.value is None and release.suppressed == ["$"]


def test_nothing_is_released_below_min_records():
    with pytest.raises(PolicyRefused) as info:
        check_release({"mean": 1.0}, record_count=4, policy=POLICY)
    assert "4 records" in info.value.message and "fewer than 5" in info.value.message
    assert info.value.hint


def test_means_are_released_when_enough_records():
    release = check_release({"mean_hba1c": 6.1, "sd": 0.9}, record_count=5, policy=POLICY)
    assert release.value == {"mean_hba1c": 6.1, "sd": 0.9}


def test_a_list_as_long_as_the_record_count_is_refused_as_row_level():
    with pytest.raises(PolicyRefused, match="row-level") as info:
        check_release({"ages": list(range(30, 80))}, record_count=50, policy=POLICY)
    assert "$.ages" in info.value.message


def test_a_list_longer_than_the_record_count_is_refused():
    with pytest.raises(PolicyRefused, match="row-level"):
        check_release(tuple(range(60)), record_count=50, policy=POLICY)


def test_a_dict_keyed_by_patient_is_refused_as_row_level():
    with pytest.raises(PolicyRefused, match="row-level"):
        check_release({f"p{i}": 6.0 for i in range(50)}, record_count=50, policy=POLICY)


def test_a_shorter_list_is_released():
    release = check_release([10.0] * 49, record_count=50, policy=POLICY)
    assert release.value == [10.0] * 49


def test_row_level_refusal_can_be_switched_off_by_the_steward():
    policy = DisclosurePolicy(refuse_row_level=False)
    assert len(check_release([1.0] * 60, record_count=50, policy=policy).value) == 60


def test_nested_structures_are_checked_at_every_depth():
    result = {"groups": [{"name": "a", "n": 2, "stats": (7, 1.5)}, {"name": "b", "n": 40}]}
    release = check_release(result, record_count=50, policy=POLICY)
    assert release.value == {
        "groups": [{"name": "a", "n": None, "stats": (7, 1.5)}, {"name": "b", "n": 40}]
    }
    assert release.suppressed == ["$.groups[0].n"]


def test_row_level_data_deep_inside_is_found():
    with pytest.raises(PolicyRefused, match=r"\$\.a\.b\[1\]"):
        check_release({"a": {"b": [1.0, [0.5] * 50]}}, record_count=50, policy=POLICY)


def test_odd_keys_get_quoted_locations():
    release = check_release({"n per group": {3: 1}}, record_count=50, policy=POLICY)
    assert release.suppressed == ['$["n per group"][3]']


def test_tuples_and_namedtuples_keep_their_type():
    Pair = namedtuple("Pair", "n mean")
    release = check_release({"t": (1, 9), "p": Pair(2, 1.0)}, record_count=50, policy=POLICY)
    assert release.value["t"] == (None, 9)
    assert release.value["p"] == Pair(None, 1.0) and type(release.value["p"]) is Pair


def test_integer_arrays_get_nan_in_suppressed_cells():
    table = np.array([[1, 12], [30, 0]])
    release = check_release({"table": table}, record_count=100, policy=POLICY)
    out = release.value["table"]
    assert out.shape == (2, 2) and np.isnan(out[0, 0])
    assert out[0, 1] == 12 and out[1, 0] == 30 and out[1, 1] == 0
    assert release.suppressed == ["$.table[0,0]"]


def test_integer_arrays_without_small_counts_are_released_unchanged():
    table = np.array([7, 12])
    assert check_release(table, record_count=100, policy=POLICY).value is table


def test_float_arrays_are_released():
    coef = np.array([0.1, -2.0, 3.5])
    np.testing.assert_array_equal(check_release(coef, record_count=50, policy=POLICY).value, coef)


def test_numpy_integer_scalars_are_counts():
    release = check_release({"n": np.int64(3), "m": np.array(2)}, record_count=50, policy=POLICY)
    assert release.value == {"n": None, "m": None}


def test_arrays_as_long_as_the_record_count_on_any_axis_are_refused():
    with pytest.raises(PolicyRefused, match="axis 1"):
        check_release(np.zeros((3, 50)), record_count=50, policy=POLICY)


def test_object_arrays_are_walked_cell_by_cell():
    cells = np.array([2, "x", 9.5], dtype=object)
    release = check_release(cells, record_count=50, policy=POLICY)
    assert list(release.value) == [None, "x", 9.5]
    assert release.suppressed == ["$[0]"]


def test_dataframe_as_long_as_the_record_count_is_refused():
    frame = pd.DataFrame({"age": range(50), "bmi": [25.0] * 50})
    with pytest.raises(PolicyRefused, match="row-level"):
        check_release(frame, record_count=50, policy=POLICY)


def test_dataframe_small_counts_are_suppressed_per_column():
    frame = pd.DataFrame({"sex": ["f", "m"], "n": [40, 2], "mean_age": [61.5, 58.0]})
    release = check_release(frame, record_count=50, policy=POLICY)
    assert release.suppressed == ["$.n[1]"]
    assert math.isnan(release.value["n"][1]) and release.value["n"][0] == 40
    assert list(release.value["sex"]) == ["f", "m"]
    assert frame["n"][1] == 2  # the analysis's own frame is not modified


def test_series_small_counts_are_suppressed():
    release = check_release(pd.Series([3, 30], name="n"), record_count=50, policy=POLICY)
    assert math.isnan(release.value[0]) and release.value[1] == 30 and release.value.name == "n"


def test_raw_bytes_are_refused_unless_the_steward_allows_them():
    with pytest.raises(PolicyRefused, match="raw bytes"):
        check_release({"blob": b"\x80\x04"}, record_count=50, policy=POLICY)
    policy = DisclosurePolicy(allow_opaque_bytes=True)
    assert check_release(b"ok", record_count=50, policy=policy).value == b"ok"


def test_unknown_types_are_refused():
    with pytest.raises(PolicyRefused, match="set"):
        check_release({"ids": {"a", "b"}}, record_count=50, policy=POLICY)


def test_strings_are_released():
    assert check_release("done", record_count=50, policy=POLICY).value == "done"


def test_results_over_the_size_limit_are_refused():
    policy = DisclosurePolicy(max_release_bytes=100)
    with pytest.raises(PolicyRefused, match="at most 100"):
        check_release("x" * 101, record_count=50, policy=policy)


def test_a_size_limit_of_zero_means_no_limit():
    policy = DisclosurePolicy(max_release_bytes=0)
    assert check_release("x" * 1000, record_count=50, policy=policy).value == "x" * 1000


def test_self_containing_results_are_refused_not_recursed_forever():
    loop: list = []
    loop.append(loop)
    with pytest.raises(PolicyRefused, match="nested deeper"):
        check_release(loop, record_count=50, policy=POLICY)


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


# -- Laplace noise --------------------------------------------------------------------------
def test_laplace_noise_has_scale_sensitivity_over_epsilon():
    rng = np.random.default_rng(20260101)
    noisy = add_laplace_noise(np.zeros(200_000), sensitivity=2.0, epsilon=0.5, rng=rng)
    scale = 2.0 / 0.5
    # Laplace(0, b): mean 0, mean absolute deviation b, variance 2 b^2
    assert abs(noisy.mean()) < 0.05
    assert np.mean(np.abs(noisy)) == pytest.approx(scale, rel=0.02)
    assert noisy.var() == pytest.approx(2 * scale**2, rel=0.03)


def test_laplace_noise_on_a_number_returns_a_float_near_it():
    rng = np.random.default_rng(7)
    draws = [add_laplace_noise(100, sensitivity=1.0, epsilon=10.0, rng=rng) for _ in range(2000)]
    assert all(isinstance(d, float) for d in draws)
    assert np.median(draws) == pytest.approx(100, abs=0.02)
    assert np.mean(np.abs(np.array(draws) - 100)) == pytest.approx(0.1, rel=0.1)


def test_laplace_noise_keeps_the_array_shape():
    out = add_laplace_noise(np.ones((2, 3), dtype=int), sensitivity=1.0, epsilon=1.0)
    assert out.shape == (2, 3) and out.dtype == np.float64


def test_laplace_noise_is_reproducible_with_a_fixed_rng_and_fresh_without():
    a = add_laplace_noise(1.0, sensitivity=1, epsilon=1, rng=np.random.default_rng(3))
    b = add_laplace_noise(1.0, sensitivity=1, epsilon=1, rng=np.random.default_rng(3))
    assert a == b
    assert add_laplace_noise(1.0, sensitivity=1, epsilon=1) != add_laplace_noise(
        1.0, sensitivity=1, epsilon=1
    )


@pytest.mark.parametrize(
    ("sensitivity", "epsilon"),
    [(1.0, 0.0), (1.0, -1.0), (0.0, 1.0), (-1.0, 1.0), (1.0, math.inf), (math.nan, 1.0), (1, True)],
)
def test_laplace_noise_refuses_bad_parameters(sensitivity, epsilon):
    with pytest.raises(DPParameterError):
        add_laplace_noise(1.0, sensitivity=sensitivity, epsilon=epsilon)


@pytest.mark.parametrize("value", ["12", [1, 2], True, np.array(["a"])])
def test_laplace_noise_refuses_non_numeric_values(value):
    with pytest.raises(DPParameterError):
        add_laplace_noise(value, sensitivity=1.0, epsilon=1.0)


# -- privacy budget -------------------------------------------------------------------------
def test_charging_reduces_the_remaining_budget(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=3.0)
    assert budget.remaining("alice") == 3.0
    charge = budget.charge("alice", 1.0, "analysis-1")
    assert charge.analysis_id == "analysis-1" and charge.epsilon == 1.0 and charge.time
    assert budget.remaining("alice") == 2.0
    assert budget.remaining("bob") == 3.0  # budgets are per researcher


def test_a_charge_over_budget_is_refused_with_the_figures(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=1.0)
    budget.charge("alice", 0.75, "a1")
    with pytest.raises(PolicyRefused) as info:
        budget.charge("alice", 0.5, "a2")
    assert info.value.message == "budget exhausted: spent 0.75 of 1, this run asks 0.5"
    assert "0.25" in info.value.hint
    assert budget.remaining("alice") == 0.25  # the refused run was not charged
    assert [c.analysis_id for c in budget.charges("alice")] == ["a1"]


def test_the_budget_can_be_spent_exactly(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=1.0)
    for i in range(10):
        budget.charge("alice", 0.1, f"a{i}")
    assert budget.remaining("alice") == 0.0
    with pytest.raises(PolicyRefused, match="budget exhausted"):
        budget.charge("alice", 0.01, "a10")


def test_the_budget_persists_across_instances(tmp_path):
    path = tmp_path / "node" / "budget.json"
    PrivacyBudget(path, epsilon_per_researcher=5.0).charge("alice", 2.0, "a1")
    again = PrivacyBudget(path, epsilon_per_researcher=5.0)
    assert again.remaining("alice") == 3.0
    again.charge("alice", 1.0, "a2")
    assert [(c.analysis_id, c.epsilon) for c in again.charges("alice")] == [
        ("a1", 2.0),
        ("a2", 1.0),
    ]


def test_the_budget_file_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "budget.json"
    budget = PrivacyBudget(path, epsilon_per_researcher=5.0)
    budget.charge("alice", 1.0, "a1")
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        budget.charge("alice", 1.0, "a2")
    assert path.read_bytes() == before  # the old file is intact, not half-written
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_corrupt_budget_file_refuses_every_charge(tmp_path):
    path = tmp_path / "budget.json"
    path.write_text("{not json")
    budget = PrivacyBudget(path, epsilon_per_researcher=5.0)
    with pytest.raises(PolicyFileError, match=r"budget\.json"):
        budget.charge("alice", 1.0, "a1")
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(PolicyFileError, match="unknown format"):
        budget.remaining("alice")


def test_a_charge_needs_a_positive_epsilon(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=5.0)
    with pytest.raises(DPParameterError):
        budget.charge("alice", 0.0, "a1")


def test_a_charge_needs_a_researcher_id(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.json", epsilon_per_researcher=5.0)
    with pytest.raises(DPParameterError, match="researcher_id"):
        budget.charge("", 1.0, "a1")


def test_concurrent_charges_never_overspend(tmp_path):
    path = tmp_path / "budget.json"
    outcomes: list[bool] = []

    def run(i: int) -> None:
        budget = PrivacyBudget(path, epsilon_per_researcher=1.0)  # one instance per "process"
        try:
            budget.charge("alice", 0.25, f"a{i}")
            outcomes.append(True)
        except PolicyRefused:
            outcomes.append(False)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes.count(True) == 4 and outcomes.count(False) == 8
    assert PrivacyBudget(path, epsilon_per_researcher=1.0).remaining("alice") == 0.0


def test_numpy_dict_keys_give_plain_locations():
    release = check_release({np.int64(7): 2}, record_count=50, policy=POLICY)
    assert release.suppressed == ["$[7]"]
