"""Final results: output_type conversion as FLAME's SDK does it, multiple results, local DP."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flame_lab.errors import DPParameterError, StarError
from flame_lab.star.results import add_noise, check_local_dp, prepare_submission
from flame_lab.star.runtime import LocalDP


def test_str_output_is_the_str_of_the_result():
    submission = prepare_submission({"mean": 4.5}, "str")
    assert submission.values == "{'mean': 4.5}"
    assert submission.results[0].output_type == "str"


def test_bytes_output_is_bytes_of_the_result():
    assert prepare_submission(bytearray(b"\x00\x01"), "bytes").values == b"\x00\x01"
    assert prepare_submission([65, 66], "bytes").values == b"AB"


def test_bytes_conversion_failure_falls_back_to_the_python_object_with_a_warning():
    warnings: list[str] = []
    submission = prepare_submission(3.5, "bytes", warn=warnings.append)
    assert submission.values == 3.5
    assert submission.results[0].output_type == "pickle"
    assert "output_type='bytes'" in warnings[0]


def test_pickle_output_keeps_the_python_object_itself():
    value = {"table": [1, 2], "array": np.arange(3)}
    submission = prepare_submission(value, "pickle")
    assert submission.values is value
    assert submission.results[0].output_type == "pickle"


def test_multiple_results_release_each_item_separately_with_its_own_type():
    submission = prepare_submission(
        (1.5, b"raw", {"k": 1}), ["str", "bytes", "pickle"], multiple_results=True,
        filename="result.csv",
    )  # fmt: skip
    assert submission.multiple_results
    assert submission.values == ["1.5", b"raw", {"k": 1}]
    assert [r.filename for r in submission.results] == [
        "result_1.csv",
        "result_2.csv",
        "result_3.csv",
    ]


def test_multiple_results_on_a_non_sequence_release_one_result_with_a_warning():
    warnings: list[str] = []
    submission = prepare_submission(7, "str", multiple_results=True, warn=warnings.append)
    assert not submission.multiple_results
    assert submission.values == "7"
    assert "multiple_results=True" in warnings[0]


def test_a_list_of_output_types_is_treated_as_flamesdk_treats_it():
    with pytest.raises(StarError, match="2 output types"):
        prepare_submission([1, 2, 3], ["str", "bytes"], multiple_results=True)
    warnings: list[str] = []
    single = prepare_submission(1, ["pickle", "str"], warn=warnings.append)
    assert single.results[0].output_type == "pickle" and "first one" in warnings[0]
    longer = prepare_submission([1, 2], ["str", "pickle", "bytes"], True, warn=warnings.append)
    assert [r.output_type for r in longer.results] == ["str", "pickle"]
    assert "first 2" in warnings[1]


def test_local_dp_noise_has_laplace_scale_sensitivity_over_epsilon():
    dp = LocalDP(epsilon=0.5, sensitivity=2.0)
    rng = np.random.default_rng(20261128)
    noisy = np.array([add_noise(10.0, dp, rng) for _ in range(20000)])
    # Laplace(0, b): mean 0, E|X| = b, Var = 2 b^2; b = 4 here. Tolerances are ~5 sigma.
    assert noisy.mean() == pytest.approx(10.0, abs=0.2)
    assert np.abs(noisy - 10.0).mean() == pytest.approx(dp.scale, rel=0.04)
    assert noisy.var() == pytest.approx(2 * dp.scale**2, rel=0.08)


def test_local_dp_is_reproducible_with_an_injected_generator_and_released_as_str():
    dp = {"epsilon": 1.0, "sensitivity": 1.0}
    first = prepare_submission(3, "pickle", local_dp=dp, rng=np.random.default_rng(1))
    second = prepare_submission(3, "pickle", local_dp=dp, rng=np.random.default_rng(1))
    assert first.values == second.values != "3"
    assert first.results[0].output_type == "str"
    assert first.local_dp == LocalDP(1.0, 1.0)
    assert math.isfinite(float(first.values))


@pytest.mark.parametrize("value", ["12", [1.0, 2.0], {"mean": 1.0}, True, None, float("nan")])
def test_local_dp_refuses_anything_but_one_finite_number(value):
    with pytest.raises(DPParameterError) as caught:
        prepare_submission(value, "str", local_dp=LocalDP(1.0, 1.0))
    assert caught.value.hint


def test_local_dp_noises_each_of_multiple_results_as_flamesdk_does():
    rng = np.random.default_rng(7)
    submission = prepare_submission([1.0, 2.0], "pickle", True, local_dp=LocalDP(1.0, 1.0), rng=rng)
    values = [float(r.value) for r in submission.results]
    assert [r.output_type for r in submission.results] == ["str", "str"]
    assert values != [1.0, 2.0]
    with pytest.raises(DPParameterError, match="single number"):
        prepare_submission([1.0, "x"], "str", True, local_dp=LocalDP(1.0, 1.0))


@pytest.mark.parametrize(
    ("epsilon", "sensitivity"), [(1.0, None), (None, 1.0), (0.0, 1.0), (1.0, -1.0), (math.inf, 1)]
)
def test_local_dp_parameters_must_both_be_finite_and_positive(epsilon, sensitivity):
    with pytest.raises(DPParameterError):
        check_local_dp(epsilon, sensitivity)


def test_no_local_dp_parameters_mean_no_local_dp():
    assert check_local_dp(None, None) is None
