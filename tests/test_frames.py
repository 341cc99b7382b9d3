"""Results as tables and plots: the common shapes become DataFrames, others are refused."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from flame_lab.frames import NotTabular, as_frame, fits_frame, plot

matplotlib.use("Agg")


def test_scalars_per_key_become_one_value_column():
    frame = as_frame({"mean_age": 51.2, "n": 1048})
    assert list(frame.index) == ["mean_age", "n"] and list(frame["value"]) == [51.2, 1048]


def test_per_node_records_become_rows():
    value = {"uk-aachen": {"n": 500, "mean": 50.1}, "pooled": {"n": 1000, "mean": 51.0}}
    frame = as_frame(value)
    assert list(frame.index) == ["uk-aachen", "pooled"] and list(frame.columns) == ["n", "mean"]


def test_columns_lists_and_arrays():
    assert as_frame({"x": [1, 2], "y": [3, 4]}).shape == (2, 2)
    assert as_frame([{"a": 1}, {"a": 2}])["a"].tolist() == [1, 2]
    assert as_frame([1.5, 2.5])["value"].tolist() == [1.5, 2.5]
    assert as_frame(np.eye(3)).shape == (3, 3)
    assert as_frame(51.25)["value"].tolist() == [51.25]
    df = pd.DataFrame({"a": [1]})
    assert as_frame(df) is df


@pytest.mark.parametrize("value", [{}, [], "text", True, {"x": [1, 2], "y": [1]}, {"a": {"b": {}}}])
def test_other_shapes_are_not_tables(value):
    assert not fits_frame(value)
    with pytest.raises(NotTabular):
        as_frame(value)


def test_one_call_plots_per_node_and_pooled_values():
    ax = plot({"uk-aachen": {"mean": 50.1}, "uk-koeln": {"mean": 52.3}, "pooled": {"mean": 51}})
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["uk-aachen", "uk-koeln", "pooled"] and len(ax.patches) == 3
    with pytest.raises(NotTabular, match="no numbers"):
        plot({"a": "x", "b": "y"})
