"""What `import flame_lab` and `%load_ext flame_lab` cost in a fresh interpreter (goal < 300 ms).

Run: /work/venv/bin/python bench/kernel.py [--runs 7]

Prints the load average, a summary of `python -X importtime -c "import flame_lab"` (total and
the slowest modules it pulled in), then the median and min-max over N fresh interpreters of
(a) `import flame_lab` and (b) the `%load_ext` step alone in an IPython shell that is already
up, and which heavy modules (flame_hub, pydantic, numpy, httpx) that step loaded. Never fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HEAVY = ("flame_hub", "pydantic", "numpy", "httpx", "pandas", "ipywidgets")

LOAD_EXT = r"""
import json, os, sys, time
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
config = Config()
config.HistoryManager.hist_file = ":memory:"
shell = InteractiveShell.instance(config=config)
before = set(sys.modules)
target = sys.argv[1]
started = time.perf_counter()
shell.run_line_magic("load_ext", target)
elapsed = time.perf_counter() - started
heavy = sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(sys.argv[2].split(",")))
print(json.dumps({"seconds": elapsed, "heavy": heavy}))
"""

IMPORT = r"""
import json, time
started = time.perf_counter()
import flame_lab
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, check=False
    )


def importtime_summary(env: dict[str, str], top: int = 8) -> list[str]:
    done = run_python(["-X", "importtime", "-c", "import flame_lab"], env)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if parts[0].isdigit():
            rows.append((int(parts[1]), parts[2]))
    total = next((us for us, name in rows if name.strip() == "flame_lab"), 0)
    lines = [f"import flame_lab, -X importtime cumulative: {total / 1000:.1f} ms"]
    for us, name in sorted(rows, reverse=True)[:top]:
        lines.append(f"  {us / 1000:8.1f} ms  {name.strip()}")
    return lines


def measure(code: str, extra: list[str], runs: int, env: dict[str, str]) -> list[dict]:
    results = []
    for _ in range(runs):
        done = run_python(["-c", code, *extra], env)
        if done.returncode != 0:
            print(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def describe(label: str, results: list[dict]) -> str:
    ms = [r["seconds"] * 1000 for r in results]
    if not ms:
        return f"{label}: no successful run"
    return (
        f"{label}: median {statistics.median(ms):.1f} ms "
        f"(min {min(ms):.1f}, max {max(ms):.1f}, n={len(ms)}; goal < 300 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "FLAME_LAB_HOME": home, "IPYTHONDIR": os.path.join(home, "ipy")}
        for line in importtime_summary(env):
            print(line)
        print(describe("import flame_lab", measure(IMPORT, [], args.runs, env)))
        import flame_lab

        target = (
            "flame_lab"
            if hasattr(flame_lab, "load_ipython_extension")
            else ("flame_lab.kernel.magics")
        )
        loads = measure(LOAD_EXT, [target, ",".join(HEAVY)], args.runs, env)
        print(describe(f"%load_ext {target}", loads))
        heavy = sorted({m for r in loads for m in r["heavy"]})
        print(f"heavy modules loaded by %load_ext: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
