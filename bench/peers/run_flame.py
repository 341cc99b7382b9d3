"""flame_lab's two ways to run a task: the sandbox federation and the in-process StarModelTester.

Sandbox: a fresh sandbox with ``sites`` data nodes and one aggregator (``daemon.up(home,
nodes=sites + 1)``); each timed run is what a researcher waits for: ``submit`` -> ``wait`` ->
``result`` (verified and decrypted here). Tester: ``StarModelTester`` on the same splits.
"""

from __future__ import annotations

import json
import os
import runpy
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness

HERE = Path(__file__).parent
ENTRY = {"mean": "flame_mean.py", "logreg": "flame_logreg.py"}
PASSPHRASE = secrets.token_urlsafe(16)  # a throwaway identity in a throwaway home


def analysis_files(task: str, rounds: int) -> dict[str, str]:
    text = (HERE / ENTRY[task]).read_text(encoding="utf-8")
    text = text.replace("ROUNDS = peer_math.ROUNDS", f"ROUNDS = {rounds}")
    return {ENTRY[task]: text, "peer_math.py": (HERE / "peer_math.py").read_text("utf-8")}


class MemorySampler:
    """Peak resident memory of this process and all its children, sampled every 50 ms."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.peak = 0
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def total(self) -> int:
        me = self._psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except self._psutil.Error:
                pass
        return total

    def proportional(self) -> int:
        """PSS: shared pages split between the processes sharing them (an honest total)."""
        me = self._psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
            except self._psutil.Error:
                pass
        return total

    def cpu_percent(self, seconds: float) -> float:
        """CPU used by this process tree over ``seconds`` of idling (100 = one core)."""
        me = self._psutil.Process()
        procs = [me, *me.children(recursive=True)]
        before = {}
        for proc in procs:
            try:
                before[proc.pid] = sum(proc.cpu_times()[:4])
            except self._psutil.Error:
                pass
        time.sleep(seconds)
        used = 0.0
        for proc in procs:
            try:
                used += sum(proc.cpu_times()[:4]) - before.get(proc.pid, 0.0)
            except self._psutil.Error:
                pass
        return 100.0 * used / seconds

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.total())
            self.processes = max(self.processes, self._count())
            self._stop.wait(0.05)

    def _count(self) -> int:
        return 1 + len(self._psutil.Process().children(recursive=True))

    def __enter__(self) -> MemorySampler:
        self.peak = self.total()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_sandbox(args: Any) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="flame-peers-"))
    os.environ["FLAME_LAB_HOME"] = str(home)
    os.environ["FLAME_LAB_PASSPHRASE"] = PASSPHRASE
    import flame_lab as fl
    from flame_lab.sandbox import daemon
    from flame_lab.security import keys

    keys.save_identity(home / "keys" / "identity.json", keys.Identity.generate(), PASSPHRASE)
    record: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        daemon.up(home / "sandbox", nodes=args.sites + 1, timeout=900)
    except Exception:
        daemon.down(home / "sandbox")
        for log in sorted((home / "sandbox" / "nodes").glob("*/agent.log")):
            lines = log.read_text(errors="replace").splitlines()
            if any("Traceback" in ln or "Error" in ln for ln in lines):
                sys.stderr.write(f"--- {log} (last lines)\n" + "\n".join(lines[-15:]) + "\n")
        raise  # the home stays, for its logs
    record["up_s"] = time.perf_counter() - t0
    try:
        fed = fl.connect()
        phases: dict[str, list[float]] = {}
        gaps: list[float] = []

        def make_task(rounds: int) -> Any:
            files = analysis_files(args.task, rounds)
            draft = fl.Draft.from_files(files, entrypoint=ENTRY[args.task])

            def task() -> Any:
                started = time.time()
                t0 = time.perf_counter()
                run = fed.submit(draft)
                t1 = time.perf_counter()
                run.wait(timeout=900)
                t2 = time.perf_counter()
                answer = run.result()
                t3 = time.perf_counter()
                if rounds == args.rounds:
                    logs = run.logs()
                    steps = {"submit": t1 - t0, "wait": t2 - t1, "result": t3 - t2}
                    steps.update(timeline(logs, started, started + (t2 - t0)))
                    if (gap := round_gap(logs)) is not None:
                        gaps.append(gap)
                    for name, seconds in steps.items():
                        phases.setdefault(name, []).append(seconds)
                return answer

            return task

        if args.memory:
            sampler = MemorySampler()
            record["idle_rss_bytes"] = sampler.total()
            record["idle_pss_bytes"] = sampler.proportional()
            record["idle_cpu_percent"] = sampler.cpu_percent(2.0)
            with sampler:
                record.update(harness.measure_rounds(make_task, args))
            record["peak_rss_bytes"] = sampler.peak
            record["processes"] = sampler.processes
        else:
            record.update(harness.measure_rounds(make_task, args))
        # the warm-up run is left out, as harness.measure leaves it out of the times
        record["phases_median_s"] = {k: statistics.median(v[1:]) for k, v in phases.items()}
        if gaps[1:]:
            record["round_gaps"] = gaps[1:]
    finally:
        daemon.down(home / "sandbox")
    shutil.rmtree(home, ignore_errors=True)
    return record


def round_gap(logs: list[Any]) -> float | None:
    """Seconds between the aggregator's rounds, from the stamps its last log line carries."""
    for line in logs:
        if line.message.startswith("round stamps: "):
            stamps = json.loads(line.message.removeprefix("round stamps: "))
            if len(stamps) > 1:
                return (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return None


def timeline(logs: list[Any], started: float, seen_done: float) -> dict[str, float]:
    """Where a run's time went, from the hub's and the nodes' own log lines (epoch ms)."""
    marks: dict[str, list[float]] = {}
    patterns = {
        "locked": "configuration locked",
        "approved": "approved the analysis",
        "distributed": "distribution executed",
        "running": ": running ",
        "code started": " started",
        "sealed": "sealed ",
    }
    for line in logs:
        for name, text in patterns.items():
            if text in line.message:
                marks.setdefault(name, []).append(float(line.time) / 1000.0)
    if len(marks) != len(patterns):
        return {}
    points = [
        ("1 submit -> locked", started, max(marks["locked"])),
        ("2 locked -> all approved", max(marks["locked"]), max(marks["approved"])),
        ("3 approved -> distributed", max(marks["approved"]), max(marks["distributed"])),
        ("4 distributed -> all running", max(marks["distributed"]), max(marks["running"])),
        ("5 running -> analysis code started", max(marks["running"]), max(marks["code started"])),
        ("6 code started -> result sealed", max(marks["code started"]), max(marks["sealed"])),
        ("7 sealed -> researcher sees executed", max(marks["sealed"]), seen_done),
    ]
    return {name: end - begin for name, begin, end in points}


def run_tester(args: Any) -> dict[str, Any]:
    from flame_lab.star import StarModelTester, ensure_importable

    ensure_importable()
    splits = [[{"patients.csv": t}] for t in harness.tables(args.data).values()]
    namespace = runpy.run_path(str(HERE / ENTRY[args.task]), run_name="as_module")
    names = ("Mean", "Mean") if args.task == "mean" else ("Newton", "Newton")

    def make_task(rounds: int) -> Any:
        def task() -> Any:
            if args.task == "logreg":  # the module's own global, as the text edit does
                namespace["NewtonAggregator"].has_converged.__globals__["ROUNDS"] = rounds
            return StarModelTester(
                data_splits=splits,
                analyzer=namespace[names[0] + "Analyzer"],
                aggregator=namespace[names[1] + "Aggregator"],
                data_type="s3",
                query=["patients.csv"],
                simple_analysis=args.task == "mean",
                output_type="pickle",
                quiet=True,
            ).result

        return task

    return harness.measure_rounds(make_task, args)


def main() -> None:
    def extra(parser):
        parser.add_argument("--mode", choices=("sandbox", "tester"), required=True)
        parser.add_argument("--memory", action="store_true")

    args = harness.arguments(extra)
    record = run_sandbox(args) if args.mode == "sandbox" else run_tester(args)
    harness.emit({"system": f"flame_lab {args.mode}", **record})


if __name__ == "__main__":
    main()
