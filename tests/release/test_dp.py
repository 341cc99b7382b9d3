"""Differential privacy is added by the node with OpenDP, from the node's own parameters,
and the epsilon actually used is charged at every node that releases."""

from __future__ import annotations

import statistics

import pytest

from flame_lab.errors import PolicyRefused
from flame_lab.privacy import DPRules, NodePolicy
from flame_lab.release import ReleaseChannel
from flame_lab.release.dp import NodeDP, epsilon_of, node_parameters, noise_release, noisy_number
from flame_lab.star.runtime import FinalSubmission, LocalDP, ReleasedResult


def channel(role="aggregator", charges=None, **dp) -> ReleaseChannel:
    policy = NodePolicy(dp=DPRules(**dp))
    spent = charges if charges is not None else []
    return ReleaseChannel(
        policy,
        node="n1",
        role=role,
        record_count=0 if role == "aggregator" else 600,
        charge=spent.append,
    )


def final(value, epsilon=1.0, sensitivity=1.0) -> FinalSubmission:
    return FinalSubmission((ReleasedResult(value, "str"),), local_dp=LocalDP(epsilon, sensitivity))


def test_the_node_not_the_analysis_adds_the_noise_and_charges_what_it_used():
    charges: list[float] = []
    out = channel(charges=charges).final(final(1200.0))
    assert out.results[0].output_type == "str"
    assert float(out.results[0].value) != 1200.0  # noised here, at the node
    assert charges == [pytest.approx(1.0)]
    assert out.local_dp == LocalDP(1.0, 1.0)


def test_an_analysis_claiming_a_large_epsilon_gets_the_nodes_cap_and_is_charged_that():
    charges: list[float] = []
    out = channel(charges=charges, max_epsilon_per_release=0.5).final(final(10.0, epsilon=50))
    assert charges == [pytest.approx(0.5)]
    assert out.local_dp.epsilon == 0.5


def test_an_analysis_claiming_a_tiny_sensitivity_gets_the_nodes_floor():
    params = node_parameters(LocalDP(1.0, 1e-9), DPRules(min_sensitivity=2.0))
    assert params.sensitivity == 2.0 and params.scale == 2.0


def test_claiming_epsilon_001_and_sending_the_exact_mean_is_noised_at_that_epsilon():
    charges: list[float] = []
    values = [
        float(channel(charges=charges).final(final(50.0, 0.01)).results[0].value) for _ in range(50)
    ]
    assert statistics.pstdev(values) > 20  # scale 100: the exact mean is not what left
    assert charges == [pytest.approx(0.01)] * 50


def test_require_dp_refuses_a_plain_release_at_aggregator_and_data_node():
    plain = FinalSubmission((ReleasedResult("42", "str"),))
    with pytest.raises(PolicyRefused, match="rule require-dp"):
        channel(require_dp=True).final(plain)
    with pytest.raises(PolicyRefused, match="rule require-dp"):
        channel(role="default", require_dp=True).message({"mean": 51.2})


def test_a_data_node_that_requires_dp_noises_its_own_release_and_is_charged():
    charges: list[float] = []
    node = channel(role="default", charges=charges, require_dp=True)
    node.declare_dp(LocalDP(epsilon=0.5, sensitivity=1.0))
    out = node.message({"count": 120, "label": "all"})
    assert out["label"] == "all" and out["count"] != 120
    assert charges == [pytest.approx(0.5)]


def test_a_flame_data_node_without_require_dp_releases_unaltered_as_on_flame():
    charges: list[float] = []
    node = channel(role="default", charges=charges)
    node.declare_dp(LocalDP(epsilon=0.5, sensitivity=1.0))
    assert node.message({"count": 120}) == {"count": 120}
    assert charges == []


def test_noise_is_opendp_laplace_with_the_expected_scale():
    params = NodeDP(epsilon=0.5, sensitivity=1.0)
    draws = [noisy_number(0.0, params) for _ in range(4000)]
    mean_abs = statistics.fmean(abs(d) for d in draws)
    assert mean_abs == pytest.approx(params.scale, rel=0.1)  # E|Laplace(b)| = b
    assert epsilon_of(params) == pytest.approx(0.5)
    assert len(set(draws)) > 3900


def test_clipping_bounds_clamp_before_the_noise():
    params = NodeDP(epsilon=1e6, sensitivity=1.0, clip=(0.0, 120.0))
    assert noisy_number(5000.0, params) == pytest.approx(120.0, abs=0.01)


def test_every_number_of_a_release_is_noised_and_each_is_charged():
    noised = noise_release({"a": 1.0, "b": [2, 3], "c": "x"}, NodeDP(1.0, 1.0))
    assert noised.numbers == 3 and noised.epsilon == pytest.approx(3.0)
    assert noised.value["c"] == "x"
