"""Result payloads: allowed types round-trip, everything else is refused, nothing is unpickled."""

from __future__ import annotations

import io
import math
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest

from flame_lab.errors import PayloadError
from flame_lab.security import payload
from flame_lab.security.payload import CSV, JSON, NPY, PARQUET, decode, encode


def roundtrip(value):
    data, content_type = encode(value)
    assert isinstance(data, bytes)
    return decode(data, content_type), content_type


# -- JSON ------------------------------------------------------------------------------------
def test_json_values_round_trip():
    value = {
        "count": 1234,
        "big": 2**80,
        "mean": 3.25,
        "ok": True,
        "missing": None,
        "name": "Zürich ✓",
        "nested": {"list": [1, 2.5, "x", [None, False]]},
    }
    assert roundtrip(value) == (value, JSON)


def test_tuples_become_json_arrays():
    assert roundtrip((1, (2, 3))) == ([1, [2, 3]], JSON)


def test_numpy_scalars_become_json_numbers_and_booleans():
    value = {"n": np.int64(7), "f": np.float32(0.5), "d": np.float64(1.5), "b": np.bool_(True)}
    decoded, content_type = roundtrip(value)
    assert content_type == JSON
    assert decoded == {"n": 7, "f": 0.5, "d": 1.5, "b": True}
    assert [type(decoded[k]) for k in "nfdb"] == [int, float, float, bool]


def test_nan_and_infinities_round_trip_as_python_json_tokens():
    data, _ = encode([math.nan, math.inf, -math.inf, np.float64("nan")])
    assert data == b"[NaN,Infinity,-Infinity,NaN]"
    decoded = decode(data, JSON)
    assert math.isnan(decoded[0]) and math.isnan(decoded[3])
    assert decoded[1:3] == [math.inf, -math.inf]


def test_json_with_other_non_standard_tokens_is_refused():
    for text in (b"[nan]", b"{'a': 1}", b"[1,]", b"\xff"):
        with pytest.raises(PayloadError, match="not valid JSON"):
            decode(text, JSON)


def test_json_with_duplicate_keys_is_refused():
    with pytest.raises(PayloadError):
        decode(b'{"a": 1, "a": 2}', JSON)


def test_deeply_nested_json_is_refused_without_a_recursion_error():
    with pytest.raises(PayloadError):
        decode(b"[" * 100_000 + b"]" * 100_000, JSON)
    deep: list = []
    for _ in range(1000):
        deep = [deep]
    with pytest.raises(PayloadError, match="nested deeper"):
        encode(deep)


# -- NumPy -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.asfortranarray(np.linspace(0, 1, 6).reshape(2, 3)),
        np.array(3.5),
        np.array([True, False]),
        np.array([1 + 2j]),
        np.array(["a", "bc"]),
        np.zeros(0, dtype=np.float64),
        np.array([(1, 2.0)], dtype=[("id", "i4"), ("value", "f8")]),
    ],
    ids=["int2d", "fortran", "0d", "bool", "complex", "unicode", "empty", "structured"],
)
def test_numpy_arrays_round_trip_as_npy(array):
    decoded, content_type = roundtrip(array)
    assert content_type == NPY
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_object_arrays_are_refused_when_encoding():
    with pytest.raises(PayloadError, match="object"):
        encode(np.array([{"a": 1}, None], dtype=object))


def test_masked_arrays_are_refused_rather_than_losing_their_mask():
    with pytest.raises(PayloadError, match="mask"):
        encode(np.ma.masked_array([1, 2], mask=[False, True]))


def test_payloads_decode_from_any_bytes_like_object():
    data, content_type = encode({"a": [1, 2]})
    for wrapped in (bytearray(data), memoryview(data)):
        assert decode(wrapped, content_type) == {"a": [1, 2]}


def test_an_npy_holding_a_pickled_object_array_is_refused_when_decoding():
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(PayloadError, match="without pickle"):
        decode(buf.getvalue(), NPY)


def test_a_pickle_claiming_to_be_npy_is_refused():
    with pytest.raises(PayloadError, match="wrong magic"):
        decode(pickle.dumps(np.arange(3)), NPY)


def test_an_npz_archive_claiming_to_be_npy_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("x.npy", encode(np.arange(3))[0])
    with pytest.raises(PayloadError):
        decode(buf.getvalue(), NPY)


def test_an_npy_with_stray_bytes_after_the_array_is_refused():
    data, _ = encode(np.arange(3))
    with pytest.raises(PayloadError, match="stray bytes"):
        decode(data + b"extra", NPY)


def test_a_truncated_npy_is_refused():
    data, _ = encode(np.arange(100))
    with pytest.raises(PayloadError):
        decode(data[:-8], NPY)


# -- tables ----------------------------------------------------------------------------------
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"site": ["a", "b", "c"], "count": [10, 20, 30], "mean": [1.5, math.nan, 2.0]},
        index=pd.Index(["x", "y", "z"], name="row"),
    )


def test_dataframes_round_trip_as_parquet_when_pyarrow_is_installed():
    decoded, content_type = roundtrip(frame())
    assert content_type == PARQUET
    pd.testing.assert_frame_equal(decoded, frame())


def test_dataframes_fall_back_to_csv_without_pyarrow(monkeypatch):
    monkeypatch.setattr(payload, "_have_pyarrow", lambda: False)
    data, content_type = encode(frame())
    assert content_type == CSV
    assert data.startswith(b"row,site,count,mean\n")
    decoded = decode(data, CSV)
    assert isinstance(decoded, pd.DataFrame)
    pd.testing.assert_frame_equal(decoded.set_index("row"), frame(), check_dtype=False)


def test_a_dataframe_with_a_plain_index_is_written_to_csv_without_it():
    plain = pd.DataFrame({"a": [1, 2]})
    data, content_type = encode(plain, prefer_parquet=False)
    assert (data, content_type) == (b"a\n1\n2\n", CSV)
    pd.testing.assert_frame_equal(decode(data, CSV), plain)


def test_garbage_claiming_to_be_parquet_is_refused():
    with pytest.raises(PayloadError, match="Parquet"):
        decode(b"PAR1 not really", PARQUET)


# -- refusals --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        frozenset({1}),
        b"raw bytes",
        object(),
        {1: "int key"},
        {"a": np.arange(3)},
        pd.Series([1, 2]),
        complex(1, 2),
        np.datetime64("2026-01-01"),
        [lambda: None],
    ],
    ids=[
        "set",
        "frozenset",
        "bytes",
        "object",
        "int-key",
        "nested-array",
        "series",
        "complex",
        "datetime64",
        "function",
    ],
)
def test_refused_types_raise_a_payload_error_naming_the_allowed_types(value):
    with pytest.raises(PayloadError) as info:
        encode(value)
    assert "NumPy arrays" in info.value.message and "DataFrames" in info.value.message


def test_an_unknown_content_type_is_refused():
    with pytest.raises(PayloadError, match="Unknown result content type"):
        decode(pickle.dumps({"a": 1}), "application/python-pickle")


def test_decoding_never_calls_pickle(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was called")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    buf = io.BytesIO()
    np.save(buf, np.array([None], dtype=object), allow_pickle=True)
    with pytest.raises(PayloadError):
        decode(buf.getvalue(), NPY)
    for value in ({"a": [1, 2]}, np.arange(4), frame()):
        data, content_type = encode(value)
        decode(data, content_type)


def test_a_whole_result_of_raw_bytes_travels_as_octets_and_comes_back_as_bytes():
    from flame_lab.security import payload as codec

    data, content_type = codec.encode_bytes(bytearray(b"\x00\x01binary"))
    assert content_type == "application/octet-stream"
    assert codec.decode(data, content_type) == b"\x00\x01binary"
