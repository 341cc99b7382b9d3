"""Result payloads: the few value types a result may hold, encoded without pickle.

- JSON (``application/json``): dict with str keys, list, tuple (decoded as list), str, int,
  float, bool, None; NumPy scalars become JSON numbers or booleans. NaN, Infinity and
  -Infinity are written as the bare tokens ``NaN``, ``Infinity``, ``-Infinity`` (Python's
  json dialect, not strict RFC 8259) so that they round-trip exactly; nothing else outside
  RFC 8259 is read back, and duplicate keys are refused.
- NumPy arrays (``application/x-npy``): ``.npy`` via np.save / np.load with
  ``allow_pickle=False``; object dtypes are refused both ways.
- Tables (pandas DataFrame): Parquet (``application/vnd.apache.parquet``) when pyarrow is
  installed, else CSV (``text/csv``, index reset into columns, dtypes re-inferred); both
  decode to a DataFrame. pandas and pyarrow are the optional extra ``tables``.

- Raw bytes (``application/octet-stream``): only as a whole result (``output_type='bytes'``,
  encoded with :func:`encode_bytes`); they decode to ``bytes`` and are never interpreted.
- Pickles (``application/x-python-pickle``): what a real FLAME node releases for
  ``output_type='pickle'`` when none of the above fits (a fitted model, a set). The analysis
  process pickles; nodes carry the bytes as an :class:`OpaquePickle` and never load them;
  :func:`decode` refuses them: the researcher's side loads them through
  ``flame_lab.star.pickles``' allow-list.

Anything else (sets, bytes inside other values, arbitrary objects, pickles) is refused with
PayloadError.
"""

from __future__ import annotations

import io
import json
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flame_lab.errors import PayloadError

if TYPE_CHECKING:
    import numpy as np


def _numpy() -> Any:
    """NumPy if something imported it: a value cannot be a NumPy object otherwise, so analyses
    that never use NumPy do not pay for importing it (each node run is a fresh process)."""
    return sys.modules.get("numpy")


JSON = "application/json"
PICKLE = "application/x-python-pickle"
NPY = "application/x-npy"
PARQUET = "application/vnd.apache.parquet"
CSV = "text/csv"
OCTETS = "application/octet-stream"
CONTENT_TYPES = (JSON, NPY, PARQUET, CSV, OCTETS, PICKLE)

ALLOWED = (
    "JSON values (dict with str keys, list, tuple, str, int, float, bool, None, NumPy "
    "scalars), NumPy arrays of a non-object dtype, or pandas DataFrames"
)
_NPY_MAGIC = b"\x93NUMPY"
_MAX_DEPTH = 256


@dataclass(frozen=True)
class OpaquePickle:
    """Pickle bytes made by an analysis process: carried by nodes, never loaded by them."""

    data: bytes

    def __repr__(self) -> str:
        return f"<OpaquePickle of {len(self.data)} bytes>"


def _refused(what: str) -> PayloadError:
    return PayloadError(
        f"A result cannot hold {what}; allowed are {ALLOWED}.",
        hint="Convert the value first (e.g. a set with sorted(...), an array inside a dict "
        "with .tolist(), a Series with .to_frame()).",
    )


def _json_value(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` made only of JSON types; refuses anything else."""
    if depth > _MAX_DEPTH:
        raise _refused(f"values nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    np = _numpy()
    if np is not None and isinstance(value, np.bool_):
        return bool(value)
    if np is not None and isinstance(value, np.integer):
        return int(value)
    if np is not None and isinstance(value, np.floating):
        return float(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _refused(f"a dict key of type {type(key).__name__} (keys must be str)")
            out[str(key)] = _json_value(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_json_value(item, depth + 1) for item in value]
    if np is not None and isinstance(value, np.ndarray):
        raise _refused("a NumPy array inside a JSON value (return it alone, or use .tolist())")
    raise _refused(f"a value of type {type(value).__name__}")


def _is_dataframe(obj: Any) -> bool:
    module = type(obj).__module__ or ""
    if not module.startswith("pandas"):
        return False
    import pandas as pd

    return isinstance(obj, pd.DataFrame)


def _have_pyarrow() -> bool:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def encode(obj: Any, *, prefer_parquet: bool = True) -> tuple[bytes, str]:
    """The payload bytes and their content type; raises PayloadError for refused types."""
    if isinstance(obj, OpaquePickle):
        return obj.data, PICKLE
    np = _numpy()
    if np is not None and isinstance(obj, np.ma.MaskedArray):
        raise _refused("a masked NumPy array (.npy would drop the mask; use .filled(np.nan))")
    if np is not None and isinstance(obj, np.ndarray):
        return _encode_npy(np.asarray(obj)), NPY
    if _is_dataframe(obj):
        if prefer_parquet and _have_pyarrow():
            return _encode_parquet(obj), PARQUET
        return _encode_csv(obj), CSV
    value = _json_value(obj)
    text = json.dumps(value, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
    return text.encode("utf-8"), JSON


def _encode_npy(array: np.ndarray) -> bytes:
    import numpy as np

    if array.dtype.hasobject:
        raise _refused(f"a NumPy array of dtype {array.dtype} (object dtypes need pickle)")
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _encode_parquet(frame: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(frame)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise _refused(f"a DataFrame whose columns Arrow cannot store ({exc})") from None
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _encode_csv(frame: Any) -> bytes:
    import pandas as pd

    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    return frame.to_csv(index=False).encode("utf-8")


def encode_bytes(data: bytes | bytearray | memoryview) -> tuple[bytes, str]:
    """A whole result that is raw bytes (``output_type='bytes'``): kept as they are."""
    return bytes(data), OCTETS


def decode(data: bytes | bytearray | memoryview, content_type: str) -> Any:
    """The value of a payload; never unpickles. Raises PayloadError for anything unexpected."""
    raw = bytes(data) if not isinstance(data, bytes) else data
    if content_type == JSON:
        return _decode_json(raw)
    if content_type == NPY:
        return _decode_npy(raw)
    if content_type == PARQUET:
        return _decode_parquet(raw)
    if content_type == CSV:
        return _decode_csv(raw)
    if content_type == OCTETS:
        return raw
    if content_type == PICKLE:
        raise PayloadError(
            "This payload is a pickle, which payload.decode never loads.",
            hint="Open it with flame_lab.star.pickles.load (an allow-list of classes).",
        )
    raise PayloadError(
        f"Unknown result content type {content_type!r}; flame_lab reads "
        + ", ".join(CONTENT_TYPES)
        + ".",
        hint="Upgrade flame_lab, or ask the node admin which version produced the result.",
    )


def _bad(what: str, exc: BaseException | None = None) -> PayloadError:
    detail = f" ({type(exc).__name__})" if exc is not None else ""
    return PayloadError(
        f"The result payload is not valid {what}{detail}; allowed are {ALLOWED}.",
        hint="Ask the analysis author to return one of the allowed types.",
    )


_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _decode_json(raw: bytes) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            raise ValueError("duplicate key")
        return out

    try:
        return json.loads(
            raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=_CONSTANTS.__getitem__
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad("JSON", exc) from None


def _decode_npy(raw: bytes) -> np.ndarray:
    import numpy as np

    if not raw.startswith(_NPY_MAGIC):
        raise _bad("NumPy .npy data (wrong magic)")
    buf = io.BytesIO(raw)
    try:
        array = np.load(buf, allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError, SyntaxError) as exc:
        raise _bad("NumPy .npy data without pickle", exc) from None
    if not isinstance(array, np.ndarray) or array.dtype.hasobject:
        raise _bad("NumPy .npy data of a non-object dtype")
    if buf.tell() != len(raw):
        raise _bad("NumPy .npy data (stray bytes after the array)")
    return array


def _decode_parquet(raw: bytes) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise PayloadError(
            "This result is a Parquet table, and pyarrow is not installed.",
            hint="pip install 'flame-lab[tables]'",
        ) from None
    try:
        table = pq.read_table(pa.BufferReader(raw))
        return table.to_pandas()
    except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
        raise _bad("Parquet", exc) from None


def _decode_csv(raw: bytes) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise PayloadError(
            "This result is a CSV table, and pandas is not installed.",
            hint="pip install 'flame-lab[tables]'",
        ) from None
    try:
        return pd.read_csv(io.BytesIO(raw))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise _bad("CSV", exc) from None
