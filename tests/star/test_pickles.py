"""Results of real FLAME nodes: pickles load only through the allow-list; hostile ones never run."""

from __future__ import annotations

import collections
import copyreg
import datetime
import decimal
import os
import pickle
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

from flame_lab.errors import PayloadError
from flame_lab.star import pickles
from flame_lab.star.pickles import UnsafePickle, UntrustedPickle
from flame_lab.star.results import decode_node_result


# -- what a real node stores, loaded back --------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_data_numpy_and_pandas_results_load_as_the_analysis_released_them(protocol):
    frame = pd.DataFrame(
        {
            "age": [30, 41],
            "bmi": [22.5, float("nan")],
            "sex": pd.Categorical(["f", "m"], dtype=pd.CategoricalDtype(_objects(["f", "m"]))),
            "seen": pd.to_datetime(["2024-01-01", "2024-03-01"]),
            "n": pd.array([1, None], dtype="Int64"),
        },
        index=pd.Index(["a", "b"], name="site", dtype=object),
    )
    value = {
        "mean": 1094.0,
        "counts": collections.Counter("aab"),
        "ordered": collections.OrderedDict(x=1),
        "when": datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC),
        "money": decimal.Decimal("1.25"),
        "set": {1, 2},
        "raw": b"\x00\x01",
        "weights": np.arange(6.0).reshape(2, 3),
        "scalar": np.float32(2.5),
        "frame": frame,
        "series": pd.Series([1.5, 2.5], name="s"),
        "tuple": (1, "two"),
    }
    loaded = pickles.load(pickle.dumps(value, protocol=protocol))
    assert loaded.keys() == value.keys()
    for key in ("mean", "counts", "ordered", "when", "money", "set", "raw", "tuple", "scalar"):
        assert loaded[key] == value[key]
    assert np.array_equal(loaded["weights"], value["weights"])
    pd.testing.assert_frame_equal(loaded["frame"], frame)
    pd.testing.assert_series_equal(loaded["series"], value["series"])


def test_a_str_result_stays_a_string_and_bytes_stay_bytes():
    assert decode_node_result("result_1a2b_261203101010.txt", b"1094.0") == "1094.0"
    assert decode_node_result("description.txt", "Größe".encode()) == "Größe"
    assert decode_node_result("plot.png", b"\x89PNG\r\n") == b"\x89PNG\r\n"
    assert decode_node_result("result.pkl", pickle.dumps(3.5)) == 3.5
    # a name of the researcher's own choosing: the bytes decide
    assert decode_node_result("mean", pickle.dumps([1, 2])) == [1, 2]
    assert decode_node_result("mean", b"[1, 2]") == "[1, 2]"
    assert decode_node_result("blob", b"\x80\x04 not a pickle") == b"\x80\x04 not a pickle"
    assert decode_node_result("blob", b"\xff\xfe\x00") == b"\xff\xfe\x00"


def _objects(values: list[str]) -> pd.Index:
    return pd.Index(values, dtype=object)


def test_arrow_backed_text_as_pandas_3_keeps_it_loads_after_its_buffers_are_checked():
    pa = pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"sex": pd.array(["f", "m"], dtype="string[pyarrow]")})
    pd.testing.assert_frame_equal(pickles.load(pickle.dumps(frame)), frame)
    # a forged offsets buffer reaching far past the 3 bytes of text: refused before any read
    good = pickle.dumps(pa.array(["ab", "c"]))
    offsets = b"\x00\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00"
    assert good.count(offsets) == 1
    forged = good.replace(offsets, b"\x00\x00\x00\x00\x02\x00\x00\x00\xff\xff\xff\x7f")
    with pytest.raises(PayloadError, match="damaged pickle"):
        pickles.load(forged)


# -- the adversary: a hostile aggregator (or hub) plants a pickle --------------------------------
class _RunsACommand:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _PopensAProcess:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", self.marker],))


class _Evals:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w')",))


def _protocol0_system(marker: str) -> bytes:
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


def _builtin2_eval(marker: str) -> bytes:
    # protocol 2 spells builtins as __builtin__: the allow-list must see through that
    return b"\x80\x02c__builtin__\neval\nX" + _len(f"open({marker!r},'w')") + b"\x85R."


def _len(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(4, "little") + data


def _getattr_chain(marker: str) -> bytes:
    # builtins.getattr(numpy, 'load'): an allowed module reached through a lookup
    del marker  # nothing to touch: reaching getattr at all is the attack
    return b"\x80\x04cbuiltins\ngetattr\ncnumpy\nndarray\nX\x07\x00\x00\x00__new__\x86R."


HOSTILE = {
    "os.system via __reduce__": lambda m: pickle.dumps(_RunsACommand(m)),
    "subprocess.Popen": lambda m: pickle.dumps(_PopensAProcess(m)),
    "builtins.eval": lambda m: pickle.dumps(_Evals(m)),
    "hand-written protocol 0": _protocol0_system,
    "__builtin__.eval": _builtin2_eval,
    "builtins.getattr": _getattr_chain,
    "nested inside allowed data": lambda m: pickle.dumps({"fine": [1.0, _RunsACommand(m)]}),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_pickle_is_refused_and_runs_nothing(name, tmp_path):
    marker = tmp_path / "pwned"
    data = HOSTILE[name](str(marker))
    with pytest.raises(UnsafePickle, match="refused, nothing was loaded") as caught:
        pickles.load(data)
    assert "Do not load this result" in caught.value.hint
    # decoding a node's result file refuses it too; without a pickle's name or shape
    # (protocol 0 is text) it stays the inert text it is
    with pytest.raises(UnsafePickle):
        decode_node_result("result.pkl", data)
    if pickles.looks_like_pickle(data):
        with pytest.raises(UnsafePickle):
            decode_node_result("result", data)
    else:
        assert decode_node_result("result", data) == data.decode()
    assert decode_node_result("result.bin", data) == data  # a 'bytes' result is never loaded
    assert not marker.exists()


def test_trusting_a_name_that_runs_commands_is_refused_all_the_same(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(_RunsACommand(str(marker)))
    for trusted in (["posix.system"], ["os.system"], ["builtins.eval", "posix.system"]):
        with pytest.raises(UnsafePickle):
            pickles.load(data, trusted=trusted)
    assert not marker.exists()


def test_the_allow_list_itself_refuses_what_the_dry_run_did_not_see(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(_RunsACommand(str(marker)))
    unpickler = pickles._AllowListUnpickler(__import__("io").BytesIO(data), pickles.ALLOWED)
    with pytest.raises(UntrustedPickle, match="system"):
        unpickler.load()
    assert not marker.exists()


def test_copyreg_extension_codes_are_refused_outright(tmp_path):
    marker = tmp_path / "pwned"
    copyreg.add_extension("os", "system", 0xF1)
    try:
        data = b"\x80\x02\x82\xf1X" + _len(f"touch {marker}") + b"\x85R."
        with pytest.raises(UnsafePickle, match="extension codes"):
            pickles.load(data, trusted=["collections.ChainMap"])
        # the refusal came first: no stub or function reached copyreg's shared cache
        assert 0xF1 not in copyreg._extension_cache
    finally:
        copyreg.remove_extension("os", "system", 0xF1)
        copyreg._extension_cache.pop(0xF1, None)
    assert not marker.exists()


def test_persistent_ids_and_damaged_pickles_are_clear_errors():
    with pytest.raises(PayloadError, match="damaged pickle"):
        pickles.load(b"\x80\x04P0\n.")
    with pytest.raises(PayloadError, match="damaged pickle"):
        pickles.load(pickle.dumps([1, 2, 3])[:-3] + b".")


# -- classes outside the allow-list: bytes, a message, and an opt-in ------------------------------
class FittedModel:
    """Stands for a fitted scikit-learn model: a class the allow-list does not know."""

    def __init__(self, coef: list[float]) -> None:
        self.coef = coef


def test_a_pickle_of_other_classes_stays_bytes_with_the_names_and_the_opt_in():
    data = pickle.dumps({"model": FittedModel([0.5, -1.0]), "n": 3})
    with pytest.raises(UntrustedPickle) as caught:
        pickles.load(data)
    name = f"{__name__}.FittedModel"
    assert caught.value.names == [name]
    assert f"trusted={[name]!r}" in caught.value.hint
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert decode_node_result("model.pkl", data) == data
    assert name in str(seen[0].message) and "returned as bytes" in str(seen[0].message)
    trusted = decode_node_result("model.pkl", data, trusted=[name])
    assert trusted["model"].coef == [0.5, -1.0]
    with pytest.raises(PayloadError, match="not a class name"):
        pickles.load(data, trusted=["FittedModel"])


class _Misuses:
    """Allowed helpers called with arguments no pandas or NumPy pickle would hold."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self):
        import pandas._libs.arrays as arrays

        if self.how == "cython-state-on-a-dict":
            cython_unpickle = vars(arrays)["__pyx_unpickle_NDArrayBacked"]  # a mangled name here
            return (cython_unpickle, (dict, 82904607, (None, None)))
        return (np.ndarray, ((2**62,), "f8"))  # an array claiming 2**62 elements


@pytest.mark.parametrize("how", ["cython-state-on-a-dict", "huge-ndarray"])
def test_allowed_helpers_called_with_forged_arguments_fail_cleanly(how):
    with pytest.raises(PayloadError):
        pickles.load(pickle.dumps(_Misuses(how)))
