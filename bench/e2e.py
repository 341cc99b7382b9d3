"""What the whole loop costs (submit -> decrypted result) on the sandbox, beside StarModelTester.

For 3, 10 and 50 nodes (N-1 data nodes + 1 aggregator; ``--quick``: 3 and 10) it starts a
sandbox in a fresh FLAME_LAB_HOME, times the federated mean (flame_lab/examples/mean_age.py) from
``submit`` to the decrypted result, and runs StarModelTester on the same analysis and the same
data splits in the same run: median, min/max, and the ratio sandbox / tester. The iterative
logistic regression (tests/analyses/logistic_regression.py) gives the cost per round. It also
splits each run into phases from the hub's log lines, and prints the time to start each
sandbox and the peak memory of hub + agents + analysis processes (sum of VmRSS over the
process tree, sampled every 50 ms). A size that does not complete is reported with the reason
(for a sandbox that does not start: the last log line of each agent that never got ready).
A script, never a test.

    /work/venv/bin/python bench/e2e.py [--quick] [--sizes 3,10,50] [--repeat N]
                                       [--logreg-up-to N] [--json FILE] [--confinement-only]

It first measures the start-up of one run at a node with bubblewrap against the same run
without it (the node's fallback), alternating, and prints the ratio.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import runpy
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import flame_lab as fl
from flame_lab.errors import FlameLabError
from flame_lab.sandbox import daemon
from flame_lab.sandbox.node import synthetic
from flame_lab.sandbox.node.layout import NodeFolder
from flame_lab.security import keys
from flame_lab.star import StarModelTester, ensure_importable

ANALYSES = Path(__file__).resolve().parent.parent / "tests" / "analyses"
MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"  # shipped with flame_lab
PASSPHRASE = "bench e2e passphrase"  # noqa: S105 (a throwaway key in a temporary home)
GOAL_3_NODES_SECONDS = 1.5
WAIT_SECONDS = 600.0  # a bound for a broken run, never reached when things work
SAMPLE_SECONDS = 0.05
HWM_EVERY = 5  # samples between reads of every process's VmHWM
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- memory of the process tree -------------------------------------------------------------
def _status_kib(pid: int, fields: tuple[str, ...]) -> dict[str, int]:
    """Selected ``kB`` fields of /proc/<pid>/status (empty if the process is gone)."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in fields:
                    found[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return found


def _rss_kib(pid: int) -> int | None:
    """Resident set of a process from /proc/<pid>/statm (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE_KIB
    except (OSError, ValueError, IndexError):
        return None


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class ProcessTree:
    """The descendants of one process; each pid's parent is read once, so a walk stays cheap."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._parents: dict[int, int | None] = {}

    def descendants(self) -> list[int]:
        pids = {int(e) for e in os.listdir("/proc") if e.isdigit()}
        self._parents = {p: self._parents[p] if p in self._parents else _parent(p) for p in pids}
        children: dict[int, list[int]] = {}
        for pid, parent in self._parents.items():
            if parent is not None:
                children.setdefault(parent, []).append(pid)
        found, todo = [], list(children.get(self.root, []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found


@dataclass
class MemorySampler:
    """Samples the summed VmRSS of this process's descendants every ~50 ms in a thread."""

    root: int = field(default_factory=os.getpid)
    peak_rss_kib: int = 0
    peak_processes: int = 0
    most_processes: int = 0
    hwm_kib: dict[int, int] = field(default_factory=dict)  # per pid: largest VmHWM seen
    samples: int = 0
    cpu_seconds: float = 0.0  # what sampling cost this process (it shares the machine)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._tree = ProcessTree(self.root)

    def sample(self) -> None:
        started = time.thread_time()
        with_peaks = self.samples % HWM_EVERY == 0  # status costs ~3x statm: read it less often
        total, count = 0, 0
        for pid in self._tree.descendants():
            rss = _rss_kib(pid)
            if rss is None:
                continue
            total += rss
            count += 1
            if with_peaks or pid not in self.hwm_kib:
                hwm = _status_kib(pid, ("VmHWM",)).get("VmHWM", rss)
                self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), hwm, rss)
            else:
                self.hwm_kib[pid] = max(self.hwm_kib[pid], rss)
        self.samples += 1
        self.most_processes = max(self.most_processes, count)
        if total > self.peak_rss_kib:
            self.peak_rss_kib, self.peak_processes = total, count
        self.cpu_seconds += time.thread_time() - started

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    @property
    def hwm_sum_kib(self) -> int:
        """Sum of every process's own peak: an upper bound of the tree's peak."""
        return sum(self.hwm_kib.values())


# -- one sandbox size -------------------------------------------------------------------------
@dataclass
class Timings:
    """Seconds of repeated runs, summarised."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def summary(self) -> dict[str, float]:
        s = self.seconds
        return {"median": self.median, "min": min(s), "max": max(s), "n": len(s)}


@dataclass
class SizeResult:
    nodes: int
    startup_seconds: float
    mean_first_seconds: float
    mean_sandbox: dict[str, float]
    mean_tester: dict[str, float]
    mean_ratio: float
    mean_phases: dict[str, float] = field(default_factory=dict)
    idle_hub_ms: dict[str, float] = field(default_factory=dict)
    logreg_rounds: int | None = None
    logreg_sandbox: dict[str, float] | None = None
    logreg_tester: dict[str, float] | None = None
    logreg_overhead_per_round: float | None = None
    logreg_sandbox_per_round: float | None = None
    logreg_phases: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float | None = None
    peak_processes: int | None = None
    most_processes: int | None = None
    hwm_sum_mib: float | None = None
    memory_samples: int | None = None
    provision_seconds: float | None = None
    startup_peak_rss_mib: float | None = None
    sampler_cpu_share: float | None = None  # of one core, while the runs were sampled
    logreg_marginal_per_round: float | None = None
    load_before: float = 0.0
    load_after: float = 0.0
    failure: str | None = None


def _draft(name: str) -> fl.Draft:
    path = MEAN_AGE if name == MEAN_AGE.name else ANALYSES / name
    return fl.Draft.from_files({name: path.read_text()}, entrypoint=name)


def _time(fn: Callable[[], Any], repeat: int) -> tuple[Timings, Any]:
    seconds, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        seconds.append(time.perf_counter() - start)
    return Timings(seconds), value


PHASES = (
    "submit",  # sign, create, upload, lock (client side)
    "approve",  # lock -> the last node approved (node agents' polling, verification)
    "dispatch",  # last approval -> build and distribution (the researcher's wait polls)
    "pickup",  # distribution -> the last node started its run (agents' polling)
    "process start",  # last run started -> last analysis process reached flame.star
    "compute",  # -> the aggregator sealed the result (analysis, messages via the hub)
    "teardown",  # -> the last node reported itself finished
    "notice+open",  # -> the result is decrypted here (wait's polling, download, open)
)


@dataclass
class Breakdown:
    """Where one run's time went, from the hub's log lines; the phases add up to the run."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    runs: int = 0

    def add(self, run: Any, started: float, ended: float) -> None:
        lines = run.logs()

        def times(node: bool, text: str) -> list[float]:
            return [
                int(ln.time) / 1000
                for ln in lines
                if (ln.node_name != "hub") == node and re.search(text, ln.message)
            ]

        marks = [
            times(False, r"^configuration locked"),
            times(True, r" approved the analysis"),
            times(False, r"^distribution executed"),
            times(True, r": running "),
            times(True, r"^(Analyzer .*|Aggregator) started"),
            times(True, r": sealed \d+ result"),
            times(True, r": finished$"),
        ]
        if not all(marks):
            return  # a log line is missing (or renamed): no breakdown for this run
        points = [started, min(marks[0]), *[max(m) for m in marks[1:]], ended]
        points[1] = max(points[1], started)  # the hub's clock is this machine's clock
        for phase, (a, b) in zip(PHASES, itertools.pairwise(points), strict=True):
            self.seconds[phase].append(max(0.0, b - a))
        self.runs += 1

    def medians(self) -> dict[str, float]:
        return {p: statistics.median(v) for p, v in self.seconds.items() if v}


def _submit_to_result(fed: Any, draft: fl.Draft, breakdown: Breakdown | None = None) -> Any:
    started = time.time()
    run = fed.submit(draft)
    run.wait(timeout=WAIT_SECONDS)
    value = run.result()
    if breakdown is not None:
        breakdown.add(run, started, time.time())
    return value


def _hub_latency(fed: Any, requests: int = 40) -> dict[str, float]:
    """Milliseconds of one small request while every agent polls an idle hub."""
    seconds = []
    for _ in range(requests):
        start = time.perf_counter()
        fed.core.get_project(fed.project_id)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return {"p50": statistics.median(seconds) * 1000, "p90": seconds[int(requests * 0.9)] * 1000}


def _tester(module: dict[str, Any], analyzer: str, aggregator: str, splits: list, simple: bool):
    def run() -> StarModelTester:
        return StarModelTester(
            data_splits=splits,
            analyzer=module[analyzer],
            aggregator=module[aggregator],
            data_type="s3",
            query=["patients.csv"],
            simple_analysis=simple,
            output_type="pickle",
            quiet=True,
        )

    return run


def _close(a: Any, b: Any) -> bool:
    """Whether sandbox and tester agree (dicts of floats, lists of floats)."""
    import numpy as np

    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9))


def _agents_diagnosis(home: Path) -> str:
    """How many agents got ready, and the last log line of each one that did not."""
    folders = [
        NodeFolder.of(home / "sandbox", n["name"]) for n in daemon.status(home / "sandbox")["nodes"]
    ]
    missing = [f for f in folders if not f.ready.exists()]
    lines = []
    for folder in missing[:5]:
        text = folder.log.read_text(errors="replace").strip() if folder.log.exists() else ""
        last = text.splitlines()[-1] if text else "(empty log)"
        alive = daemon.agent_pid(folder) is not None
        lines.append(f"{folder.name} ({'alive' if alive else 'gone'}): {last[-300:]}")
    return f"{len(folders) - len(missing)}/{len(folders)} agents ready; " + " | ".join(lines)


def bench_size(nodes: int, repeat: int, logreg_repeat: int, log: Callable[[str], None]):
    """Start a fresh sandbox of ``nodes`` nodes, time both analyses there and in the tester.
    A size that fails keeps its home folder (hub and agent logs) and names it in the failure."""
    home = Path(tempfile.mkdtemp(prefix=f"flame-e2e-{nodes}-"))
    keep = True
    os.environ["FLAME_LAB_HOME"] = str(home)
    os.environ["FLAME_LAB_PASSPHRASE"] = PASSPHRASE
    keys.save_identity(home / "keys" / "identity.json", keys.Identity.generate(), PASSPHRASE)
    load_before = os.getloadavg()[0]
    starting, running = MemorySampler(), MemorySampler()
    try:
        with starting:
            start = time.perf_counter()
            daemon.initialise(home / "sandbox", nodes)  # what `up` does first, timed apart
            provisioned = time.perf_counter()
            try:
                daemon.up(home / "sandbox", nodes=nodes, timeout=WAIT_SECONDS)
            except FlameLabError as exc:
                elapsed = time.perf_counter() - start
                raise RuntimeError(
                    f"{exc.message} after {elapsed:.0f} s; {_agents_diagnosis(home)}; "
                    f"logs kept in {home}"
                ) from None
            up = time.perf_counter()
        log(f"  {nodes} nodes: sandbox up in {up - start:.1f} s")
        sampled = time.perf_counter()
        try:
            with running:
                result = _measure(nodes, up - start, repeat, logreg_repeat, log)
            keep = False
        except (FlameLabError, RuntimeError) as exc:
            text = exc.message if isinstance(exc, FlameLabError) else str(exc)
            log(f"  {nodes} nodes failed: {text}")
            result = SizeResult(nodes, up - start, 0.0, {}, {}, 0.0)
            result.failure = f"{type(exc).__name__}: {text}; logs kept in {home}"
        sampled = time.perf_counter() - sampled
    finally:
        daemon.down(home / "sandbox")
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    result.provision_seconds = provisioned - start
    result.peak_rss_mib = running.peak_rss_kib / 1024
    result.peak_processes = running.peak_processes
    result.most_processes = running.most_processes
    result.hwm_sum_mib = running.hwm_sum_kib / 1024
    result.memory_samples = running.samples
    result.sampler_cpu_share = running.cpu_seconds / sampled
    result.startup_peak_rss_mib = starting.peak_rss_kib / 1024
    result.load_before, result.load_after = load_before, os.getloadavg()[0]
    return result


def _measure(nodes: int, startup: float, repeat: int, logreg_repeat: int, log) -> SizeResult:
    fed = fl.connect()
    sites = [n for n in fed.nodes() if n.type == "default"]
    if len(sites) != nodes - 1:
        raise RuntimeError(f"the sandbox has {len(sites)} data nodes, expected {nodes - 1}")
    splits = [[{"patients.csv": synthetic.generate(n.name).tables["patients.csv"]}] for n in sites]

    latency = _hub_latency(fed)
    mean = runpy.run_path(str(MEAN_AGE), run_name="as_module")
    mean_draft = _draft("mean_age.py")
    start = time.perf_counter()  # the first run also unlocks the key and warms the caches
    first = _submit_to_result(fed, mean_draft)
    first_seconds = time.perf_counter() - start
    phases = Breakdown()
    sandbox, value = _time(lambda: _submit_to_result(fed, mean_draft, phases), repeat)
    tester, local = _time(_tester(mean, "MeanAnalyzer", "MeanAggregator", splits, True), repeat)
    if not (_close(value, local.result) and _close(first, local.result)):
        raise RuntimeError(f"mean differs: sandbox {value} vs tester {local.result}")
    result = SizeResult(
        nodes=nodes,
        startup_seconds=startup,
        mean_first_seconds=first_seconds,
        mean_sandbox=sandbox.summary(),
        mean_tester=tester.summary(),
        mean_ratio=sandbox.median / tester.median,
        mean_phases=phases.medians(),
        idle_hub_ms=latency,
    )
    log(
        f"  {nodes} nodes: mean {sandbox.median:.2f} s "
        f"(tester {tester.median * 1000:.1f} ms, first {first_seconds:.2f} s)"
    )
    if logreg_repeat:
        logreg = runpy.run_path(str(ANALYSES / "logistic_regression.py"), run_name="as_module")
        draft = _draft("logistic_regression.py")
        phases = Breakdown()
        sandbox, weights = _time(lambda: _submit_to_result(fed, draft, phases), logreg_repeat)
        tester, local = _time(
            _tester(logreg, "NewtonAnalyzer", "NewtonAggregator", splits, False), logreg_repeat
        )
        if not _close(weights, local.result):
            raise RuntimeError(f"weights differ: sandbox {weights} vs tester {local.result}")
        rounds = local.num_iterations
        result.logreg_rounds = rounds
        result.logreg_sandbox = sandbox.summary()
        result.logreg_tester = tester.summary()
        result.logreg_overhead_per_round = (sandbox.median - tester.median) / rounds
        result.logreg_sandbox_per_round = sandbox.median / rounds
        if rounds > 1:  # what one more round costs: beyond the one-round mean's fixed costs
            mean_median = result.mean_sandbox["median"]
            result.logreg_marginal_per_round = (sandbox.median - mean_median) / (rounds - 1)
        result.logreg_phases = phases.medians()
        log(f"  {nodes} nodes: logreg {sandbox.median:.2f} s over {rounds} rounds")
    return result


# -- printing ---------------------------------------------------------------------------------
def _spread(s: dict[str, float], scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(s['min'] * scale)}-{fmt.format(s['max'] * scale)}"


def report(results: list[SizeResult], load: tuple[float, float, float]) -> None:
    print()
    print(
        f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"({os.cpu_count()} cores)"
    )
    print("federated mean, submit -> decrypted result (seconds; tester in milliseconds)")
    print(
        f"{'nodes':>5} {'reps':>4} {'median s':>9} {'min-max s':>12} {'first s':>8} "
        f"{'tester ms':>10} {'tester min-max':>15} {'ratio':>8}"
    )
    for r in results:
        if r.failure:
            print(f"{r.nodes:>5} FAILED: {r.failure}")
            continue
        m, t = r.mean_sandbox, r.mean_tester
        print(
            f"{r.nodes:>5} {int(m['n']):>4} {m['median']:>9.2f} {_spread(m):>12} "
            f"{r.mean_first_seconds:>8.2f} {t['median'] * 1000:>10.1f} "
            f"{_spread(t, 1000, '{:.1f}'):>15} {r.mean_ratio:>7.0f}x"
        )
    print()
    print("logistic regression (Newton): per round, sandbox vs tester")
    print(
        f"{'nodes':>5} {'rounds':>6} {'sandbox s':>10} {'min-max s':>12} {'tester ms':>10} "
        f"{'s/round':>8} {'overhead s/round':>17} {'one more round s':>17}"
    )
    for r in results:
        if r.failure or r.logreg_sandbox is None:
            continue
        s, t = r.logreg_sandbox, r.logreg_tester or {}
        print(
            f"{r.nodes:>5} {r.logreg_rounds:>6} {s['median']:>10.2f} {_spread(s):>12} "
            f"{t['median'] * 1000:>10.1f} {r.logreg_sandbox_per_round:>8.3f} "
            f"{r.logreg_overhead_per_round:>17.3f} {r.logreg_marginal_per_round or 0:>17.3f}"
        )
    print()
    print("where a run's time goes (median seconds per phase, from the hub's log lines)")
    print(f"{'nodes':>5} {'analysis':<8} " + " ".join(f"{p:>13}" for p in PHASES))
    for r in results:
        for label, phases in (("mean", r.mean_phases), ("logreg", r.logreg_phases)):
            if phases:
                cells = " ".join(f"{phases.get(p, float('nan')):>13.2f}" for p in PHASES)
                print(f"{r.nodes:>5} {label:<8} {cells}")
    print()
    print("sandbox start and memory (hub + agents + analysis processes, summed VmRSS)")
    print(
        f"{'nodes':>5} {'up s':>6} {'of which provision':>19} {'start peak MiB':>15} "
        f"{'run peak MiB':>13} {'procs then':>11} {'most procs':>11} {'sum VmHWM MiB':>14} "
        f"{'idle hub p50/p90 ms':>20} {'sampler cpu':>11} {'load avg (1 min)':>17}"
    )
    for r in results:
        if r.peak_rss_mib is None:
            continue
        print(
            f"{r.nodes:>5} {r.startup_seconds:>6.1f} {r.provision_seconds:>19.1f} "
            f"{r.startup_peak_rss_mib:>15.0f} {r.peak_rss_mib:>13.0f} {r.peak_processes:>11} "
            f"{r.most_processes:>11} {r.hwm_sum_mib:>14.0f} "
            f"{r.idle_hub_ms.get('p50', 0):>11.1f}/{r.idle_hub_ms.get('p90', 0):<8.1f} "
            f"{r.sampler_cpu_share or 0:>10.0%} "
            f"{r.load_before:>7.1f} -> {r.load_after:<6.1f}"
        )
    print()
    by_size = {r.nodes: r for r in results if not r.failure}
    if 3 in by_size:
        median = by_size[3].mean_sandbox["median"]
        verdict = "met" if median <= GOAL_3_NODES_SECONDS else "MISSED"
        print(f"goal 3 nodes <= {GOAL_3_NODES_SECONDS} s median: {median:.2f} s, {verdict}")
    if any(r.nodes == 50 for r in results):
        verdict = "completed" if 50 in by_size else "DID NOT complete"
        print(f"goal 50 nodes completes on this {os.cpu_count()}-core machine: {verdict}")


# -- start-up cost of confinement ------------------------------------------------------------
CONFINE_PROBE = "print('started')\n"


def bench_confinement(repeat: int, log: Callable[[str], None]) -> dict[str, Any]:
    """One trivial analysis through the node's runner, with bubblewrap and without (the
    fallback: rlimits and, as root, the old network namespace + uid drop), alternating in the
    same run: median seconds from start to exit, and the ratio confined / unconfined."""
    from flame_lab.limits import ResourceLimits
    from flame_lab.privacy import NodePolicy
    from flame_lab.sandbox.node import confine
    from flame_lab.sandbox.node.datasets import NodeData
    from flame_lab.sandbox.node.runner import RunSpec, run_analysis
    from flame_lab.sandbox.node.service import NodeFacts, NodeService, Switchboard

    why = confine.unavailable()
    if why:
        return {"skipped": why}
    logging.getLogger("flame_lab.sandbox.node.runner").setLevel(logging.ERROR)  # the fallback's
    root = Path(tempfile.mkdtemp(prefix="flame-lab-bench-confine-"))
    try:
        (root / "code").mkdir()
        (root / "code" / "entry.py").write_text(CONFINE_PROBE)
        facts = NodeFacts("site", "default", ("agg",), "agg", "bench", "bench")
        data = NodeData.from_site(synthetic.generate("site", n_patients=30))
        limits = ResourceLimits(allow_unconfined=True)
        times: dict[str, list[float]] = {"confined": [], "unconfined": []}
        for i in range(repeat):
            for mode in ("confined", "unconfined"):
                board = Switchboard()
                service = NodeService(facts, data, NodePolicy(), board.transport("site"))
                spec = RunSpec(root / "code", "entry.py", root / f"work-{mode}-{i}", limits)
                if mode == "unconfined":
                    os.environ["FLAME_LAB_BWRAP"] = str(root / "no-bwrap")
                started = time.perf_counter()
                try:
                    outcome = run_analysis(spec, service, lambda *_: None)
                finally:
                    os.environ.pop("FLAME_LAB_BWRAP", None)
                times[mode].append(time.perf_counter() - started)
                engine = outcome.confinement.get("engine")
                if not outcome.ok or engine != ("bubblewrap" if mode == "confined" else "none"):
                    raise RuntimeError(f"{mode} run failed: {outcome.failure} ({engine})")
        medians = {mode: statistics.median(t) for mode, t in times.items()}
        log(f"  confinement: {medians}")
        return {
            "repeat": repeat,
            "confinedSeconds": medians["confined"],
            "unconfinedSeconds": medians["unconfined"],
            "ratio": medians["confined"] / medians["unconfined"],
            "confinedMinMax": [min(times["confined"]), max(times["confined"])],
            "unconfinedMinMax": [min(times["unconfined"]), max(times["unconfined"])],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report_confinement(figures: dict[str, Any]) -> None:
    if "skipped" in figures:
        print(f"\nconfinement start-up: not measured ({figures['skipped']})")
        return
    print(
        f"\nstart-up of one run (trivial analysis, median of {figures['repeat']}): "
        f"bubblewrap {figures['confinedSeconds'] * 1000:.0f} ms, "
        f"without {figures['unconfinedSeconds'] * 1000:.0f} ms, "
        f"ratio {figures['ratio']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 and 10 nodes, 3 repetitions")
    parser.add_argument("--sizes", help="comma-separated node counts (default 3,10,50)")
    parser.add_argument("--repeat", type=int, help="repetitions for sizes below 50")
    parser.add_argument(
        "--logreg-up-to",
        type=int,
        default=10,
        help="run the iterative analysis on sandboxes of at most this many nodes (default 10)",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--confinement-only", action="store_true", help="only the start-up cost of confinement"
    )
    args = parser.parse_args()
    sizes = [3, 10] if args.quick else [3, 10, 50]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    small = args.repeat or (3 if args.quick else 5)
    ensure_importable()  # the analyses import flame.star, as on a FLAME node
    load = os.getloadavg()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    confinement = bench_confinement(small * 2, log)
    if args.confinement_only:
        report_confinement(confinement)
        return
    results: list[SizeResult] = []
    for nodes in sizes:
        repeat = small if nodes < 50 else max(3, min(small, 3))
        logreg_repeat = repeat if nodes <= args.logreg_up_to else 0
        try:
            results.append(bench_size(nodes, repeat, logreg_repeat, log))
        except Exception as exc:  # a size that does not complete is a figure too
            log(f"  {nodes} nodes failed: {type(exc).__name__}: {exc}")
            results.append(
                SizeResult(nodes, 0.0, 0.0, {}, {}, 0.0, failure=f"{type(exc).__name__}: {exc}")
            )
    report(results, load)
    report_confinement(confinement)
    if args.json:
        figures = {
            "confinement": confinement,
            "loadAverage": load,
            "cpuCount": os.cpu_count(),
            "sizes": [asdict(r) for r in results],
            "loadAverageAtEnd": os.getloadavg(),
        }
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
