"""Results as a real FLAME node leaves them (plaintext in the RESULT bucket), opened by result()."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from flame_lab.federation import Analysis
from flame_lab.star.pickles import UnsafePickle


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _unsealed() -> Analysis:
    """An analysis submitted to a real FLAME Hub: its record says the result is not sealed."""
    return Analysis(None, SimpleNamespace(sealed=False, analysis_sealed=False, analysis_id="a1"))  # type: ignore[arg-type]


def test_real_node_results_decode_by_their_output_type():
    blobs = [
        ("result_1a2b_261203101010.txt", b"1094.0"),
        ("result_3c4d_261203101011.pkl", pickle.dumps({"mean": 1094.0, "n": np.int64(12)})),
        ("plot.png", b"\x89PNG\r\n"),
        ("weights.pkl", pickle.dumps(np.array([0.5, -1.0]))),
    ]
    with pytest.warns(UserWarning, match="plaintext"):
        text, mapping, png, weights = _unsealed()._open(blobs, None)  # type: ignore[arg-type]
    assert text == "1094.0"  # a 'str' result stays a string, as the sandbox returns it
    assert mapping == {"mean": 1094.0, "n": 12}
    assert png == b"\x89PNG\r\n"
    assert weights.tolist() == [0.5, -1.0]


def test_a_hostile_pickle_from_a_real_hub_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "pwned"
    blobs = [("result_0000_261203101010.pkl", pickle.dumps(_Exploit(str(marker))))]
    with pytest.warns(UserWarning, match="plaintext"), pytest.raises(UnsafePickle):
        _unsealed()._open(blobs, None)  # type: ignore[arg-type]
    assert not marker.exists()


class Model:
    def __init__(self) -> None:
        self.coef = [1.0]


def test_a_model_result_stays_bytes_until_the_researcher_trusts_its_class():
    data = pickle.dumps(Model())
    with pytest.warns(UserWarning) as seen:
        (raw,) = _unsealed()._open([("model.pkl", data)], None)  # type: ignore[arg-type]
    assert raw == data
    assert any(f"{__name__}.Model" in str(w.message) for w in seen)
    with pytest.warns(UserWarning, match="plaintext"):
        (model,) = _unsealed()._open([("model.pkl", data)], None, (f"{__name__}.Model",))  # type: ignore[arg-type]
    assert model.coef == [1.0]
