"""What every system's worker shares: the command line, the timing loop and the JSON it prints.

A worker runs one system on one task in its own process (its own interpreter, possibly its
own virtualenv), times ``runs`` repetitions after one untimed warm-up, and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULT_PREFIX = "PEERS-RESULT "


def arguments(extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=("mean", "logreg"), required=True)
    parser.add_argument("--sites", type=int, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10, help="logreg: Newton rounds")
    parser.add_argument(
        "--short-rounds", type=int, default=0, help="logreg: also time this many rounds"
    )
    parser.add_argument("--data", required=True, help="folder of site tables (index.json)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


class FailedStart(Exception):
    """A run that failed to start for reasons outside the system (e.g. Ray on a loaded box)."""


RETRIES = {"failed_starts": 0}
TIMES: list[float] = []  # every completed run's seconds, warm-up first (for a watchdog)


def timed(task: Callable[[], Any], tries: int = 5) -> tuple[float, Any]:
    """One run's seconds and answer; a FailedStart is retried (and counted), not timed."""
    for attempt in range(tries):
        t0 = time.perf_counter()
        try:
            answer = task()
        except FailedStart:
            RETRIES["failed_starts"] += 1
            if attempt == tries - 1:
                raise
            continue
        TIMES.append(time.perf_counter() - t0)
        return TIMES[-1], answer
    raise AssertionError("unreachable")


def measure(task: Callable[[], Any], runs: int) -> tuple[list[float], float, Any]:
    """Seconds of each timed run, the warm-up's seconds, and the last answer."""
    cold, answer = timed(task)
    times = []
    for _ in range(runs):
        seconds, answer = timed(task)
        times.append(seconds)
    return times, cold, answer


def measure_rounds(make_task: Callable[[int], Callable[[], Any]], args: argparse.Namespace):
    """Time the task; for logreg also its ``--short-rounds`` variant (per-round cost)."""
    times, cold, answer = measure(make_task(args.rounds), args.runs)
    record: dict[str, Any] = {"times": times, "cold_s": cold, "answer": answer}
    record["failed_starts"] = RETRIES["failed_starts"]
    if args.task == "logreg" and args.short_rounds:
        short, _, _ = measure(make_task(args.short_rounds), args.runs)
        record["short"] = {"rounds": args.short_rounds, "times": short}
    return record


def emit(record: dict[str, Any]) -> None:
    """The one line the orchestrator reads (everything else a worker prints is ignored)."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(record) + "\n")
    sys.stdout.flush()


def tables(folder: str) -> dict[str, bytes]:
    """Each site's ``patients.csv``, in the order the orchestrator wrote them (index.json)."""
    root = Path(folder)
    names = json.loads((root / "index.json").read_text(encoding="utf-8"))
    return {name: (root / name / "patients.csv").read_bytes() for name in names}


def site_names(folder: str) -> list[str]:
    return json.loads((Path(folder) / "index.json").read_text(encoding="utf-8"))
