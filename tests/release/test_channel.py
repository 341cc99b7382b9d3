"""A hostile or careless analysis tries to get patient rows out of a data node.

Each test plays one way the issue found rows leaving (strings, dict keys, split lists,
reshaped arrays, rows over rounds, disguised small counts, group statistics, differencing,
logs, progress). Under ``strict`` each must be refused with the rule, the value's path and the
node; under ``flame`` the same release leaves unaltered, as on a real FLAME node, and the lint
records what a strict node would refuse.
"""

from __future__ import annotations

import numpy as np
import pytest

from flame_lab.errors import PolicyRefused
from flame_lab.privacy import NodePolicy, ReleaseRules
from flame_lab.release import ReleaseChannel

RECORDS = 655
AGES = [18 + (i * 37) % 70 for i in range(RECORDS)]  # a stand-in for every patient's age


def strict(**release) -> ReleaseChannel:
    policy = NodePolicy(profile="strict", release=ReleaseRules(**release))
    return ReleaseChannel(policy, node="uk-aachen", role="default", record_count=RECORDS)


def flame() -> ReleaseChannel:
    return ReleaseChannel(
        NodePolicy(), node="uk-aachen", role="default", record_count=RECORDS, lint=True
    )


def refused(channel: ReleaseChannel, value) -> str:
    with pytest.raises(PolicyRefused) as info:
        channel.message(value)
    text = info.value.message
    assert "uk-aachen" in text, text
    return text


LEAKS = {
    "rows as one CSV string": ("\n".join(f"{i},{a}" for i, a in enumerate(AGES)), "rule text"),
    "rows as dict keys": ({f"patient-{i}/{a}": 0.5 for i, a in enumerate(AGES[:200])}, "rule"),
    "two half-length lists": ([AGES[:327], AGES[327:]], "rule row-level"),
    "an (n/10, 10) array": (np.array(AGES[:650]).reshape(65, 10), "rule run-total"),
    "a count of 1 as -1": ({"rare": -1}, "rule small-count"),
    "a count of 1 as 1.0": ({"rare": 1.0}, "rule small-count"),
    "a count of 1 as NumPy": ({"rare": np.int8(1)}, "rule small-count"),
    "a count of 1 as 1001": ({"rare": 1001}, "rule offset-count"),
    "a count of 1 as n=1": ({"rare": "n=1"}, "rule small-count"),
    "a count of 1 as bits": ({"rare": format(1, "08b")}, "rule small-count"),
    "a count of 1 as a bool list": ({"rare": [False, False, True]}, "rule small-count"),
    "the complement of a small group": ({"without_rare": RECORDS - 2}, "rule offset-count"),
    "a group's sum beside a withheld count": (
        {"groups": {"other|<40": {"n": None, "sum": 110.0}}},
        'result["groups"]["other|<40"]["sum"]',
    ),
    "a group's mean beside a small count": (
        {"groups": {"f": {"n": 2, "mean": 55.0}}},
        'group-statistic at result["groups"]["f"]["mean"]',
    ),
    "raw bytes": (bytes(AGES), "rule opaque"),
}


@pytest.mark.parametrize("name", list(LEAKS))
def test_strict_refuses_each_leak_with_rule_path_and_node(name):
    value, words = LEAKS[name]
    text = refused(strict(), value)
    assert words in text, text
    assert "result" in text


@pytest.mark.parametrize("name", list(LEAKS))
def test_flame_releases_each_unaltered_and_the_lint_names_what_strict_would_refuse(name):
    value, _ = LEAKS[name]
    channel = flame()
    assert channel.message(value) is value  # not a copy, not changed: as on FLAME
    assert channel.findings, "the lint found nothing a strict node refuses"
    assert all(f.node == "uk-aachen" for f in channel.findings)


def test_a_refusal_never_shows_a_row_valued_dict_key():
    key = "Alice Example, born 1961-04-02, HbA1c 7.9"
    text = refused(strict(), {key: 2})
    assert "Alice" not in text and "1961" not in text
    assert "<key #0>" in text


def test_rows_sent_25_per_round_are_stopped_before_half_of_them_left():
    channel = strict()
    left = 0
    with pytest.raises(PolicyRefused) as info:
        for start in range(0, RECORDS, 25):
            channel.message([float(a) for a in AGES[start : start + 25]])
            left += 25
    assert "rule run-total" in info.value.message
    assert left <= RECORDS // 2


def test_an_honest_iterative_model_fits_within_the_run_total():
    channel = strict()
    for _ in range(8):  # 8 Newton rounds of a 5-coefficient model: gradient and Hessian
        channel.message({"gradient": [0.25] * 5, "hessian": [0.5] * 25})


def test_a_count_moving_by_one_between_rounds_is_refused_as_differencing():
    channel = strict()
    channel.message({"diabetes": 120, "mean_age": 54.2})
    assert "rule differencing" in refused(channel, {"diabetes": 119, "mean_age": 54.3})


def test_honest_aggregates_pass_strict_unchanged():
    channel = strict()
    value = {"n": 655, "mean_age": 51.37, "by_sex": {"f": 340, "m": 315}, "sd": 12.1}
    assert channel.message(value) == value


def test_too_few_records_release_nothing():
    policy = NodePolicy(profile="strict")
    small = ReleaseChannel(policy, node="uk-aachen", role="default", record_count=3)
    assert "rule min-records" in refused(small, {"mean": 40.5})


def test_log_lines_carrying_rows_are_refused_under_strict():
    channel = strict()
    with pytest.raises(PolicyRefused, match="rule run-total"):
        channel.text(repr(AGES), "a log line")
    with pytest.raises(PolicyRefused, match="rule small-count"):
        strict().text("patient 3 is 54", "a line of stdout")
    strict().text("round 7: loss 0.1834", "a log line")  # an honest line passes


def test_progress_is_quantised_under_strict_and_exact_under_flame():
    assert strict().progress(54) == 50
    assert strict(progress_step=25).progress(99) == 75
    assert strict().progress(100) == 100
    assert flame().progress(54) == 54


def test_the_aggregators_own_messages_are_not_a_data_nodes_release():
    policy = NodePolicy(profile="strict")
    channel = ReleaseChannel(policy, node="agg", role="aggregator", record_count=0)
    assert channel.message({"rare": 1}) == {"rare": 1}
