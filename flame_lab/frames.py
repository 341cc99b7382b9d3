"""Results as a researcher reads them: a pandas DataFrame where the value fits one, and a plot.

Analyses return dicts and lists of numbers (a pooled mean, per-node counts, coefficients).
``as_frame`` turns the common shapes into a table without guessing at anything else:

- a DataFrame stays itself, a Series becomes one column, a number one cell;
- ``{"a": 1, "b": 2.5}`` (scalars) -> one row per key, column ``value``;
- ``{"uk-aachen": {"n": 10, ...}, "pooled": {...}}`` (records) -> one row per outer key;
- ``{"x": [..], "y": [..]}`` (equal-length lists) -> one column per key;
- ``[{"n": 1}, {"n": 2}]`` -> one row per item; ``[1, 2, 3]`` -> one column;
- a 1-D or 2-D NumPy array -> its rows.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from flame_lab.errors import FlameLabError


class NotTabular(FlameLabError):
    """The value has no table shape."""

    default_hint = (
        "Results become tables when they are dicts or lists of numbers, of records, or of "
        "equal-length lists; use the value as it is."
    )


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | numbers.Number)


def as_frame(value: Any) -> Any:
    """``value`` as a pandas DataFrame (see the module docstring), or NotTabular."""
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, pd.Series):
        return value.to_frame()
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return pd.DataFrame({"value": [value]})
    if isinstance(value, np.ndarray) and value.ndim in (1, 2) and value.dtype != object:
        return pd.DataFrame(value)
    if isinstance(value, Mapping) and value:
        items = list(value.values())
        if all(_scalar(v) for v in items):
            return pd.DataFrame({"value": list(items)}, index=[str(k) for k in value])
        if all(isinstance(v, Mapping) and all(_scalar(x) for x in v.values()) for v in items):
            return pd.DataFrame.from_dict(
                {str(k): dict(v) for k, v in value.items()}, orient="index"
            )
        lists = [v for v in items if isinstance(v, Sequence | np.ndarray) and not _scalar(v)]
        if len(lists) == len(items) and len({len(v) for v in lists}) == 1:
            if all(all(_scalar(x) for x in v) for v in lists):
                return pd.DataFrame({str(k): list(v) for k, v in value.items()})
    if isinstance(value, list | tuple) and value:
        if all(isinstance(v, Mapping) and all(_scalar(x) for x in v.values()) for v in value):
            return pd.DataFrame([dict(v) for v in value])
        if all(_scalar(v) for v in value):
            return pd.DataFrame({"value": list(value)})
    raise NotTabular(f"a {type(value).__name__} of this shape is not a table")


def fits_frame(value: Any) -> bool:
    try:
        as_frame(value)
    except NotTabular:
        return False
    return True


def plot(value: Any, *, ax: Any = None, title: str | None = None, **kwargs: Any) -> Any:
    """One call: the result's numbers as bars (rows: per node and pooled values); the Axes."""
    frame = as_frame(value)
    numeric = frame.select_dtypes("number")
    if numeric.empty:
        raise NotTabular("the result holds no numbers to plot", hint="Show it as a table.")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 3.2))
    kwargs.setdefault("kind", "bar")
    kwargs.setdefault("rot", 0)
    drawn = numeric.plot(ax=ax, title=title, legend=numeric.shape[1] > 1, **kwargs)
    drawn.grid(axis="y", alpha=0.3)
    return drawn
