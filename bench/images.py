"""What choosing a master image costs: the draft check and the sandbox's image stand-ins.

Prints, each against a baseline measured in the same run:
- ``Draft.check()`` of a draft importing pandas and NumPy (imports resolved in this
  interpreter, weighed against every known image) against the draft's static checks alone;
- building a stand-in (a virtualenv with the import gate) against reusing the cached one;
- starting Python in the stand-in and importing NumPy against the same in this interpreter.
A script, not a test.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flame_lab.draft import Draft
from flame_lab.images import catalog as catalogs
from flame_lab.images.environments import environment_for
from flame_lab.images.fit import report

SOURCE = """
import numpy as np
import pandas as pd
from flame.star import StarAggregator, StarAnalyzer, StarModel
StarModel(analyzer=StarAnalyzer, aggregator=StarAggregator, data_type="s3")
"""


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def line(what: str, seconds: float, baseline: float, base_what: str) -> None:
    print(
        f"{what:<46} {seconds * 1000:9.1f} ms   {seconds / baseline:6.1f} x {base_what}"
        f" ({baseline * 1000:.1f} ms)"
    )


def main() -> None:
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    draft = Draft.from_files({"analysis.py": SOURCE})
    catalog = catalogs.load(with_user=False)
    static = timed(lambda: (draft.imports(), draft._check_imports()), 20)
    start = time.perf_counter()
    report(draft, "python/ml", catalog)
    first = time.perf_counter() - start
    checked = timed(lambda: report(draft, "python/ml", catalog), 10)
    line("Draft check vs python/ml + all images, first", first, static, "static checks")
    line("Draft check vs python/ml + all images, again", checked, static, "static checks")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "images"
        start = time.perf_counter()
        env = environment_for("python/ml", cache, catalog)
        built = time.perf_counter() - start
        reused = timed(lambda: environment_for("python/ml", cache, catalog), 5)
        line("stand-in of python/ml, first build", built, reused, "reuse")
        probe = ["-c", "import numpy"]
        here = timed(lambda: subprocess.run([sys.executable, *probe], check=True), 5)
        there = timed(lambda: subprocess.run([str(env.python), *probe], check=True), 5)
        line("python -c 'import numpy' in the stand-in", there, here, "this interpreter")
        size = sum(f.stat().st_size for f in env.root.rglob("*") if f.is_file())
        print(f"stand-in on disk: {size / 1024:.0f} KiB (a venv without pip, symlinked Python)")
    print(f"catalog: {len(catalog.images)} images, {catalogs.DATA_FILE.stat().st_size} bytes")


if __name__ == "__main__":
    main()
