"""What the bound on silent nodes costs a look: ``Analysis.status()`` with the bound (deadlines.py:
check each node's signed statements, keep the record) against the same look without it, on a
real sandbox, alternating blocks in the same run. The analysis is kept unfinished (the
aggregator's agent is stopped), so every look judges it. A script, never a test.

    .venv/bin/python bench/bounds.py [--looks 200] [--blocks 6]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import flame_lab as fl
from flame_lab.federation import Analysis
from flame_lab.sandbox import daemon
from flame_lab.sandbox.node.layout import NodeFolder
from flame_lab.security import keys

MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"
PASSPHRASE = "bench bounds passphrase"  # noqa: S105 (a throwaway key in a temporary home)


def _looks(run: Analysis, count: int) -> float:
    """Median seconds of one status() look."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        run.status(advance=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--looks", type=int, default=200, help="looks per block")
    parser.add_argument("--blocks", type=int, default=6, help="blocks of each kind, alternating")
    args = parser.parse_args()
    print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    home = Path(tempfile.mkdtemp(prefix="flame-bench-bounds-"))
    os.environ["FLAME_LAB_HOME"] = str(home)
    os.environ["FLAME_LAB_PASSPHRASE"] = PASSPHRASE
    keys.save_identity(home / "keys" / "identity.json", keys.Identity.generate(), PASSPHRASE)
    sandbox = home / "sandbox"
    daemon.up(sandbox, nodes=2)
    try:
        pid = daemon.agent_pid(NodeFolder.of(sandbox, "aggregator"))
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the aggregator never starts: the analysis stays open
        fed = fl.connect(start=False)
        draft = fl.Draft.from_files({"mean_age.py": MEAN_AGE.read_text()}, "mean_age.py")
        run = fed.submit(draft, name="bench bounds")
        deadline = time.monotonic() + 120
        while run.status().overall != "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"analysis {run.id}: {run.status().overall}, {len(run.status().nodes)} nodes")
        real_watch = Analysis._watch
        without, with_bound = [], []
        for _ in range(args.blocks):
            Analysis._watch = lambda self, nodes, distributed: (nodes, False)  # type: ignore[method-assign]
            without.append(_looks(run, args.looks))
            Analysis._watch = real_watch  # type: ignore[method-assign]
            with_bound.append(_looks(run, args.looks))
        a, b = statistics.median(without), statistics.median(with_bound)
        print(f"status() look without the bound: median {a * 1000:.2f} ms")
        print(f"status() look with the bound:    median {b * 1000:.2f} ms")
        print(f"ratio with/without: {b / a:.2f} ({args.blocks} alternating blocks of {args.looks})")
        os.kill(pid, signal.SIGCONT)
    finally:
        daemon.down(sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
