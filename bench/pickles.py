"""What loading a real FLAME node's pickled result through the allow-list costs, beside pickle.

For a few result shapes (a dict of statistics, a 1e6-float array, a 100k-row DataFrame with a
text column) it times ``flame_lab.star.pickles.load`` (a dry run that names every global with
stubs, then the allow-listed load) against plain ``pickle.loads`` of the same bytes, in the
same run, median of ``--repeat`` rounds, and prints the ratio. A script, never a test.

    python bench/pickles.py [--repeat N]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from flame_lab.star import pickles


def _shapes() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    n = 100_000
    return {
        "dict of 200 statistics": {f"stat_{i}": float(i) / 7 for i in range(200)},
        "array of 1e6 floats": rng.normal(size=1_000_000),
        "DataFrame 100k rows (float, int, text)": pd.DataFrame(
            {
                "bmi": rng.normal(25, 4, n),
                "age": rng.integers(18, 95, n),
                "site": rng.choice(["aachen", "koeln", "bonn"], n),
            }
        ),
    }


def _median_seconds(func: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"{'result':42} {'bytes':>10} {'pickle.loads':>13} {'allow-list':>11} {'ratio':>6}")
    for name, value in _shapes().items():
        data = pickle.dumps(value)
        base = _median_seconds(lambda data=data: pickle.loads(data), args.repeat)  # noqa: S301 - our own bytes
        ours = _median_seconds(lambda data=data: pickles.load(data), args.repeat)
        print(
            f"{name:42} {len(data):>10} {base * 1e3:>10.2f} ms {ours * 1e3:>8.2f} ms "
            f"{ours / base:>6.2f}"
        )


if __name__ == "__main__":
    main()
