"""flame_lab against the systems researchers would otherwise use: Flower, vantage6, NVIDIA FLARE.

The same two tasks on the same synthetic sites (``synthetic.generate(node_name)`` for the
sandbox's own node names): (a) a one-round federated mean and count over 3 and 10 sites,
(b) logistic regression by Newton's method, 10 rounds, 5 sites. Every system runs in its own
worker process (bench/peers/run_*.py), in its own virtualenv where its pins clash with
flame_lab's; each figure is the median of ``--runs`` timed runs after one warm-up, and every
peer is printed as a ratio to flame_lab measured in the same invocation. Also: per-round cost
of (b), the sandbox from 3 to 100 sites (time, memory), and where the sandbox's time goes.

    /work/venv/bin/python bench/peers.py --setup            # peers' virtualenvs, once
    /work/venv/bin/python bench/peers.py --write-results    # everything; bench/RESULTS.md
    /work/venv/bin/python bench/peers.py --quick            # 3 runs, scale 3 and 10 only
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKERS = HERE / "peers"
sys.path.insert(0, str(WORKERS))

import peer_math  # noqa: E402

RESULT_PREFIX = "PEERS-RESULT "
ROOT = Path(sys.prefix).resolve().parent  # the folder holding flame_lab's virtualenv
SANDBOX, TESTER = "flame_lab sandbox", "flame_lab tester"
FLOWER, VANTAGE6, NVFLARE = "Flower simulation", "vantage6 mock", "NVFlare simulator"


@dataclass(frozen=True)
class Peer:
    """How to run one system: the interpreter (its virtualenv) and its worker script."""

    name: str
    env: str  # environment variable naming the interpreter
    venv: str  # default virtualenv folder beside flame_lab's
    requirements: tuple[str, ...]  # what --setup installs there
    script: str
    args: tuple[str, ...] = ()
    module: str = ""  # importable when the peer is installed in flame_lab's own environment

    def python(self) -> Path:
        """$ENV, else the peer's own virtualenv, else this interpreter if it has the peer."""
        if not self.venv:
            return Path(sys.executable)
        if os.environ.get(self.env):
            return Path(os.environ[self.env])
        own = ROOT / self.venv / "bin" / "python"
        if not own.exists() and self.module and importlib.util.find_spec(self.module):
            return Path(sys.executable)
        return own


PEERS = (
    Peer(SANDBOX, "", "", (), "run_flame.py", ("--mode", "sandbox")),
    Peer(TESTER, "", "", (), "run_flame.py", ("--mode", "tester")),
    Peer(
        FLOWER, "PEERS_FLOWER_PYTHON", "bench-venv", ("flwr[simulation]==1.42.0",), "run_flower.py"
    ),
    Peer(
        VANTAGE6,
        "PEERS_VANTAGE6_PYTHON",
        "bench-venv-v6",
        ("vantage6-algorithm-tools==4.15.2",),
        "run_vantage6.py",
        module="vantage6.algorithm.tools",
    ),
    Peer(
        NVFLARE, "PEERS_NVFLARE_PYTHON", "bench-venv-nvflare", ("nvflare==2.9.0",), "run_nvflare.py"
    ),
)
BY_NAME = {p.name: p for p in PEERS}


@dataclass(frozen=True)
class Case:
    label: str
    task: str
    sites: int
    rounds: int = 1

    @property
    def title(self) -> str:
        if self.task == "mean":
            return f"({self.label}) one-round mean and count, {self.sites} sites"
        return f"({self.label}) logistic regression, {self.rounds} rounds, {self.sites} sites"


CASES = (
    Case("a", "mean", 3),
    Case("a", "mean", 10),
    Case("b", "logreg", 5, peer_math.ROUNDS),
)
SHORT_ROUNDS = 2  # (b) is also timed with this many rounds: the difference is per-round cost
#: systems cheap enough to time twice; Flower and NVFlare time their server loop instead
SHORT_SYSTEMS = (SANDBOX, TESTER, VANTAGE6)
GOAL_ROUND_MS = 50.0


@dataclass
class Outcome:
    """One system on one case: its timed runs, or why it has none."""

    system: str
    record: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def times(self) -> list[float]:
        return self.record.get("times", [])

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


# -- running workers ---------------------------------------------------------------------------
def write_sites(folder: Path, sites: int) -> Path:
    """The sandbox's own sites' ``patients.csv`` (same names, same generator, same bytes)."""
    from flame_lab.sandbox.hub.provision import node_names
    from flame_lab.sandbox.node import synthetic

    root = folder / f"sites-{sites}"
    if not root.exists():
        names = [s.name for s in node_names(sites + 1) if s.type == "default"]
        for name in names:
            (root / name).mkdir(parents=True)
            (root / name / "patients.csv").write_bytes(
                synthetic.generate(name).tables["patients.csv"]
            )
        (root / "index.json").write_text(json.dumps(names), encoding="utf-8")
    return root


def run_worker(peer: Peer, argv: list[str], timeout: float, tries: int = 2) -> Outcome:
    """Run one worker; a failed start (e.g. Ray's on a loaded machine) is tried once more."""
    python = peer.python()
    if not python.exists():
        return Outcome(peer.name, error=f"not installed ({python}; `bench/peers.py --setup`)")
    command = [str(python), str(WORKERS / peer.script), *peer.args, *argv]
    error = ""
    for _ in range(tries):
        # its own session: whatever the worker leaves behind (Ray's daemons) is ended with it
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=WORKERS,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stdout, stderr = "", ""
            error = f"no answer within {timeout:.0f} s"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for line in reversed(stdout.splitlines()):
            if line.startswith(RESULT_PREFIX):
                return Outcome(peer.name, json.loads(line[len(RESULT_PREFIX) :]))
        if stdout or stderr:
            tail = [ln for ln in stderr.splitlines() if ln.strip()][-3:]
            error = f"exit {proc.returncode}: " + " | ".join(ln.strip()[:160] for ln in tail)
    return Outcome(peer.name, error=error)


def agrees(answer: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(answer, dict) and all(
            abs(float(answer[k]) - float(v)) <= 1e-9 * max(1.0, abs(float(v)))
            for k, v in expected.items()
        )
    return len(answer) == len(expected) and all(
        abs(a - e) <= 1e-9 * max(1.0, abs(e)) for a, e in zip(answer, expected, strict=True)
    )


def run_case(case: Case, systems: list[str], data: Path, runs: int) -> list[Outcome]:
    tables = {}
    folder = write_sites(data, case.sites)
    for name in json.loads((folder / "index.json").read_text()):
        tables[name] = (folder / name / "patients.csv").read_bytes()
    expected = peer_math.reference(case.task, tables, case.rounds)
    argv = ["--task", case.task, "--sites", str(case.sites), "--runs", str(runs)]
    argv += ["--data", str(folder), "--rounds", str(case.rounds)]
    outcomes = []
    for name in systems:
        print(f"  {name} ...", end="", flush=True)
        extra = []
        if case.task == "logreg" and name in SHORT_SYSTEMS:
            extra = ["--short-rounds", str(SHORT_ROUNDS)]
        outcome = run_worker(BY_NAME[name], argv + extra, timeout=1200, tries=1)
        if outcome.times and not agrees(outcome.record.get("answer"), expected):
            outcome.error = f"wrong answer {outcome.record.get('answer')!r}"
        print(f" {outcome.median:.3f} s" if outcome.median else f" {outcome.error}", flush=True)
        outcomes.append(outcome)
    return outcomes


# -- figures -------------------------------------------------------------------------------------
def spread(times: list[float]) -> str:
    return f"{min(times):.3f}-{max(times):.3f}"


def ratio(outcome: Outcome, base: Outcome | None) -> str:
    if not (outcome.median and base and base.median):
        return "-"
    return f"{outcome.median / base.median:.2f}x"


def case_table(case: Case, outcomes: list[Outcome]) -> list[str]:
    by = {o.system: o for o in outcomes}
    lines = [
        "| system | median s | min-max s (n) | warm-up s | / sandbox | / tester |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        if not o.times:
            lines.append(f"| {o.system} | - | {o.error} | - | - | - |")
            continue
        notes = []
        if o.record.get("failed_starts"):
            notes.append(f"{o.record['failed_starts']} failed Ray starts, not timed")
        if o.record.get("cut_short"):
            notes.append(f"cut short: {o.record['cut_short'][:80]}")
        note = f" [{'; '.join(notes)}]" if notes else ""
        lines.append(
            f"| {o.system} | {o.median:.3f} | {spread(o.times)} ({len(o.times)}){note} | "
            f"{o.record['cold_s']:.2f} | {ratio(o, by.get(SANDBOX))} | {ratio(o, by.get(TESTER))} |"
        )
    return lines


def compute_per_round(data: Path, sites: int) -> float:
    """Seconds of arithmetic on the critical path of one round: the slowest site, then the step."""
    folder = write_sites(data, sites)
    tables = [p.read_bytes() for p in sorted(folder.glob("*/patients.csv"))]
    weights = peer_math.reference("logreg", dict(enumerate(tables)), 3)
    samples = []
    for _ in range(20):
        slowest = 0.0
        parts = []
        for table in tables:
            t0 = time.perf_counter()
            parts.append(peer_math.newton_part(table, weights))
            slowest = max(slowest, time.perf_counter() - t0)
        t0 = time.perf_counter()
        peer_math.newton_step(weights, parts)
        samples.append(slowest + time.perf_counter() - t0)
    return statistics.median(samples)


def per_round(outcomes: list[Outcome], rounds: int, compute_s: float) -> list[dict[str, Any]]:
    """Per-round seconds: (median at ``rounds`` - median at SHORT_ROUNDS) / the difference."""
    rows = []
    for o in outcomes:
        short = o.record.get("short", {}).get("times")
        loops = o.record.get("loop_times")
        gaps = o.record.get("round_gaps")
        if not o.times or not (short or loops or gaps):
            continue
        row: dict[str, Any] = {"system": o.system}
        if short:
            each = (statistics.median(o.times) - statistics.median(short)) / (rounds - SHORT_ROUNDS)
            row["per_round_ms"] = 1000 * each
            row["overhead_ms"] = 1000 * (each - compute_s)
        if loops:  # the server loop's own time: no start-up, no shut-down
            row["in_loop_ms"] = 1000 * statistics.median(loops) / rounds
            row.setdefault("overhead_ms", row["in_loop_ms"] - 1000 * compute_s)
        if gaps:  # the time between the aggregator's rounds, stamped by the analysis itself
            row["in_loop_ms"] = 1000 * statistics.median(gaps)
            row["in_loop_overhead_ms"] = row["in_loop_ms"] - 1000 * compute_s
        rows.append(row)
    return rows


def startup_costs(runs: int = 5) -> dict[str, float]:
    """What starting one analysis process costs: one interpreter that confines itself, then
    imports the bootstrap (and whatever the analysis imports, numpy here)."""
    probes = {
        "python -c pass": "pass",
        "import flame_lab.sandbox.node.confine": "import flame_lab.sandbox.node.confine",
        "import confine, then bootstrap (one interpreter per run)": (
            "import flame_lab.sandbox.node.confine, flame_lab.sandbox.node.bootstrap"
        ),
        "import numpy": "import numpy",
    }
    found = {}
    for label, code in probes.items():
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples.append(time.perf_counter() - t0)
        found[label] = statistics.median(samples)
    return found


def polling_constants() -> dict[str, str]:
    """The waits built into the sandbox, read from the code that has them."""
    import inspect

    from flame_lab import federation
    from flame_lab.sandbox.node import agent, messenger

    interval = inspect.signature(federation.Analysis.wait).parameters["interval"].default

    def where(module: Any, name: str) -> str:
        lines, start = inspect.getsourcelines(module)
        number = next(i for i, ln in enumerate(lines) if ln.startswith(f"{name} ="))
        return f"{Path(module.__file__).relative_to(HERE.parent)}:{max(start, 1) + number}"

    return {
        f"node agents wait on the hub's change feed for their analyses (answered at once on a "
        f"change, else after {agent.CHANGE_WAIT_SECONDS} s), ticks at least "
        f"{agent.MIN_TICK_SECONDS} s apart": where(agent, "CHANGE_WAIT_SECONDS"),
        f"a running node watches its peers every {agent.WATCH_SECONDS} s, or every nodes / "
        f"{agent.WATCHES_PER_SECOND:g} s in larger runs": where(agent, "WATCH_SECONDS"),
        f"node messages are long-polled (a read waits at the hub up to {messenger.WAIT_SECONDS} s)"
        f" and arrive as they are stored": where(messenger, "WAIT_SECONDS"),
        f"Analysis.wait() waits on the hub's change feed of the analysis (at most "
        f"{federation.CHANGE_WAIT_SECONDS} s a request), pausing after each look as long as the "
        f"look took, at most {interval} s; on hubs without the feed it asks every {interval} s": (
            where(federation, "CHANGE_WAIT_SECONDS")
        ),
    }


def run_scale(sites_list: list[int], data: Path, runs: int) -> list[dict[str, Any]]:
    rows = []
    for sites in sites_list:
        print(f"  sandbox with {sites} sites ...", end="", flush=True)
        argv = ["--task", "mean", "--sites", str(sites), "--runs", str(runs), "--memory"]
        argv += ["--data", str(write_sites(data, sites))]
        outcome = run_worker(BY_NAME[SANDBOX], argv, timeout=3600, tries=1)
        print(f" {outcome.median:.2f} s" if outcome.median else f" {outcome.error}", flush=True)
        rows.append({"sites": sites, "nodes": sites + 1, **outcome.record, "error": outcome.error})
    return rows


def run_profile() -> dict[str, Any]:
    """py-spy on the aggregator's agent and the hub during task (b) (peers/profile_sandbox)."""
    print("profile of a round (py-spy) ...", end="", flush=True)
    argv = ["--py-spy", os.environ["PEERS_PY_SPY"]] if os.environ.get("PEERS_PY_SPY") else []
    peer = Peer("profile", "", "", (), "profile_sandbox.py")
    outcome = run_worker(peer, argv, timeout=1200, tries=1)
    print(" done" if outcome.record else f" {outcome.error}", flush=True)
    return outcome.record or {"error": outcome.error}


# -- the machine -------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        wanted = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "CPU max MHz")
        info["cpu"] = {
            k.strip(): v.strip()
            for k, _, v in (ln.partition(":") for ln in lscpu.splitlines())
            if k.strip() in wanted
        }
    except OSError:
        info["cpu"] = {}
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    info["memory_gib"] = round(int(meminfo[0].split()[1]) / 2**20, 1)
    info["load_average"] = list(os.getloadavg())
    info["interpreters"] = {}
    packages = ["flame_lab", "numpy", "cryptography", "flwr", "ray", "vantage6-algorithm-tools"]
    packages += ["nvflare", "pandas"]
    seen = set()
    for peer in PEERS:
        python = peer.python()
        if str(python) in seen or not python.exists():
            continue
        seen.add(str(python))
        code = (
            "import json, sys\nfrom importlib.metadata import version\nfound = {}\n"
            f"for name in {packages!r}:\n"
            "    try: found[name] = version(name)\n    except Exception: pass\n"
            "print(json.dumps({'python': sys.version.split()[0], 'packages': found}))"
        )
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            info["interpreters"][str(python)] = json.loads(out.stdout)
    return info


# -- the report ----------------------------------------------------------------------------------
def median_of(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def sources_sentence(sources: list[str]) -> str:
    if len(sources) == 1:
        return (
            "These figures come from one invocation that measured everything one after the "
            "other; the report was written again from its JSON (`--report-from`) to add notes."
        )
    return (
        f"These figures come from {len(sources)} invocations merged with `--report-from`: a "
        "later invocation's measurement of a system replaces an earlier one, a failed one "
        "keeps the earlier (the Notes say which figures are older); a plain `--write-results` "
        "measures everything one after the other."
    )


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        "# flame_lab and its peers",
        "",
        "Generated by `/work/venv/bin/python bench/peers.py --write-results` "
        f"on {results['date']} ({results['runs']} timed runs per figure after one warm-up; "
        "ratios are medians of the same invocation: above 1x means flame_lab is faster).",
        "",
        *([sources_sentence(results["sources"]), ""] if results.get("sources") else []),
        "## Machine",
        "",
        f"- {m['platform']}; CPU: "
        + ", ".join(f"{k} {v}" for k, v in m.get("cpu", {}).items())
        + f"; memory {m['memory_gib']} GiB",
        f"- load average at start {m['load_average'][0]:.1f}, at end "
        f"{results['load_average_end'][0]:.1f}: the machine is shared, so the spreads are wide",
    ]
    for python, found in m["interpreters"].items():
        pkgs = ", ".join(f"{k} {v}" for k, v in found["packages"].items())
        out.append(f"- `{python}`: Python {found['python']}; {pkgs}")
    out += [
        "",
        "What is timed: flame_lab sandbox = `fed.submit(draft)` -> `run.wait()` -> "
        "`run.result()` (signed, uploaded, approved, run in confined processes, sealed, verified "
        "and decrypted), with the sandbox already up; flame_lab tester = one `StarModelTester`; "
        "Flower = one `run_simulation` call (it starts and stops Ray each time); vantage6 = "
        "`MockAlgorithmClient` built from the CSV files plus the central task; NVFlare = one "
        "simulator run. Every system's answer is checked against the directly computed one.",
    ]
    for entry in sorted(results["cases"], key=lambda e: (e["case"]["label"], e["case"]["sites"])):
        case = Case(**entry["case"])
        outcomes = [Outcome(o["system"], o["record"], o["error"]) for o in entry["outcomes"]]
        out += ["", f"## {case.title}", "", *case_table(case, outcomes)]
    out += ["", "## Goals", ""]
    for goal in results["goals"]:
        out.append(f"- {goal}")
    rounds = results.get("per_round", [])
    if rounds:
        out += [
            "",
            f"## Per-round cost of (b), 5 sites: (median at {peer_math.ROUNDS} rounds - median "
            f"at {SHORT_ROUNDS}) / {peer_math.ROUNDS - SHORT_ROUNDS}",
            "",
            f"Arithmetic on one round's critical path (slowest site + Newton step): "
            f"{1000 * results['compute_per_round_s']:.2f} ms; overhead = per round - that. "
            "Flower and NVFlare are timed once per run; their per-round figure is their "
            "server loop's time / rounds (in-loop: without their start-up and shut-down). "
            "The sandbox's in-loop figure is the time between the aggregator's rounds, stamped "
            "by the analysis itself (median over runs of (last - first) / (rounds - 1)).",
            "",
            "| system | per round ms | overhead ms | in-loop per round ms | in-loop overhead ms |",
            "|---|---:|---:|---:|---:|",
        ]

        def ms(row: dict[str, Any], key: str) -> str:
            return f"{row[key]:.1f}" if key in row else "-"

        for row in rounds:
            cells = [ms(row, k) for k in ("per_round_ms", "overhead_ms", "in_loop_ms")]
            cells.append(ms(row, "in_loop_overhead_ms"))
            out.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    phases = results.get("sandbox_phases", {})
    if phases:
        out += [
            "",
            "## Where the sandbox's time goes (task (a), 3 sites; medians from the hub's and "
            "the nodes' own log times)",
            "",
            "| step | median s |",
            "|---|---:|",
        ]
        for name, seconds in phases.items():
            out.append(f"| {name} | {seconds:.3f} |")
        out += ["", "Start-up of one analysis process (median of 5, this machine, this load):", ""]
        for label, seconds in results["startup"].items():
            out.append(f"- `{label}`: {seconds:.3f} s")
        out += ["", "Waits built into the sandbox:", ""]
        for text, where in results["polling"].items():
            out.append(f"- {text} ({where})")
    profile = results.get("profile", {})
    if profile.get("agent_ms_per_round"):
        out += profile_section(profile)
    scale = results.get("scale", [])
    if scale:
        out += scale_section(scale)
    if results.get("notes"):
        out += ["", "## Notes", "", *[f"- {note}" for note in results["notes"]]]
    return "\n".join(out) + "\n"


def profile_section(p: dict[str, Any]) -> list[str]:
    out = [
        "",
        f"## Profile of a round of (b) in the sandbox (py-spy, {p['rate']} samples/s; "
        f"{p['rounds']} rounds at {p['sites']} sites took {p['elapsed_s']:.2f} s)",
        "",
        "The aggregator's node agent, thread serving the analysis's messages, ms per round:",
        "",
        "| activity | ms per round |",
        "|---|---:|",
    ]
    out += [f"| {k} | {v:.0f} |" for k, v in p["agent_ms_per_round"].items()]
    out += ["", "Its busy lines:", "", "| line | ms per round |", "|---|---:|"]
    out += [f"| `{k}` | {v:.0f} |" for k, v in p["agent_lines_ms_per_round"].items()]
    out += [
        "",
        f"The hub, busy {p['hub_busy_ms_per_round']:.0f} ms per round (all its work, serving "
        "every node), by innermost flame_lab line <- leaf frame:",
        "",
        "| line | ms per round |",
        "|---|---:|",
    ]
    out += [f"| `{k}` | {v:.0f} |" for k, v in p["hub_lines_ms_per_round"].items()]
    return out


def scale_section(rows: list[dict[str, Any]]) -> list[str]:
    gib = 2**30
    out = [
        "",
        "## Scale: the sandbox from 3 to 100 sites, task (a)",
        "",
        "Nodes = sites + aggregator, each its own agent process; memory = resident set of the "
        "benchmark, the hub and every agent and analysis process, sampled every 50 ms (RSS "
        "counts shared pages once per process; PSS splits them).",
        "",
        "| sites | up s | submit->result median s (min-max) | x time vs 3 | idle RSS GiB "
        "| idle PSS GiB | peak RSS GiB | x peak vs 3 | peak processes | idle CPU % |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = next((r for r in rows if r.get("times")), None)
    for r in rows:
        if not r.get("times"):
            out.append(f"| {r['sites']} | - | {r.get('error', '')} | | | | | | | |")
            continue
        med = statistics.median(r["times"])
        grow_t = med / statistics.median(base["times"]) if base else float("nan")
        grow_m = r["peak_rss_bytes"] / base["peak_rss_bytes"] if base else float("nan")
        out.append(
            f"| {r['sites']} | {r['up_s']:.1f} | {med:.2f} ({spread(r['times'])}) | "
            f"{grow_t:.1f} | {r['idle_rss_bytes'] / gib:.2f} | {r['idle_pss_bytes'] / gib:.2f} | "
            f"{r['peak_rss_bytes'] / gib:.2f} | {grow_m:.1f} | {r['processes']} | "
            f"{r['idle_cpu_percent']:.0f} |"
        )
    return out


def goals(results: dict[str, Any]) -> list[str]:
    """Each goal of the issue: reached or not, and when not, what the profile says dominates."""
    found = []
    phases = results.get("sandbox_phases", {})
    steps = {k: v for k, v in phases.items() if k[:1].isdigit()}
    for entry in results.get("cases", []):
        c = entry["case"]
        if c["task"] != "mean" or c["sites"] != 3:
            continue
        by = {o["system"]: o for o in entry["outcomes"]}
        flame, flower = by.get(SANDBOX), by.get(FLOWER)
        if not (
            flame and flower and flame["record"].get("times") and flower["record"].get("times")
        ):
            found.append("(a) at 3 sites against Flower: not measured (a worker failed)")
            continue
        a = statistics.median(flame["record"]["times"])
        b = statistics.median(flower["record"]["times"])
        line = (
            f"(a) at 3 sites, sandbox submit -> decrypted result faster than Flower's "
            f"simulation: {'reached' if a < b else 'NOT reached'} ({a:.2f} s against "
            f"{b:.2f} s; Flower / flame_lab {b / a:.2f}x)."
        )
        if steps:
            name, seconds = max(steps.items(), key=lambda kv: kv[1])
            line += f" The sandbox's largest step: {name[2:]} ({seconds:.2f} s of {a:.2f} s)."
        found.append(line)
    profile = results.get("profile", {})
    for row in results.get("per_round", []):
        if row["system"] != SANDBOX:
            continue
        # the in-loop figure times the rounds themselves; the difference of two medians of
        # whole runs carries their spread divided by only 8 rounds
        overhead = row.get("in_loop_overhead_ms", row["overhead_ms"])
        reached = overhead < GOAL_ROUND_MS
        line = (
            f"(b) sandbox per-round overhead under {GOAL_ROUND_MS:.0f} ms at 5 sites: "
            f"{'reached' if reached else 'NOT reached'} ({overhead:.0f} ms between the "
            f"aggregator's rounds; {row['overhead_ms']:.0f} ms from whole runs of "
            f"{peer_math.ROUNDS} and {SHORT_ROUNDS} rounds)."
        )
        activity = profile.get("agent_ms_per_round", {})
        if not reached and activity:
            top = sorted(activity.items(), key=lambda kv: -kv[1])[:3]
            line += " In the aggregator's agent a round is " + ", ".join(
                f"{ms:.0f} ms {what}" for what, ms in top
            )
            hub = profile.get("hub_lines_ms_per_round", {})
            if hub:
                where, ms = max(hub.items(), key=lambda kv: kv[1])
                line += f"; the hub's busiest line is `{where}` ({ms:.0f} ms per round)"
            line += " (profile below)."
        found.append(line)
    return found


# -- setup ---------------------------------------------------------------------------------------
def setup() -> None:
    """One virtualenv per peer whose pins clash with flame_lab's (see the module docstring)."""
    for peer in PEERS:
        if not peer.venv:
            continue
        folder = ROOT / peer.venv
        if not (folder / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
            base = Path(sys.base_prefix) / "bin" / "python3"
            if base.exists():  # a venv of the base interpreter, not of flame_lab's venv
                subprocess.run([str(base), "-m", "venv", "--clear", str(folder)], check=True)
        pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q"]
        t0 = time.perf_counter()
        subprocess.run([*pip, *peer.requirements], check=True)
        print(
            f"{peer.name}: {' '.join(peer.requirements)} in {folder} "
            f"({time.perf_counter() - t0:.0f} s)"
        )


# -- main ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--systems", default=",".join(p.name for p in PEERS))
    parser.add_argument("--scale", default="3,10,30,100", help="sandbox sites; '' to skip")
    parser.add_argument(
        "--cases", default="a3,a10,b5", help="which comparisons, in this order: a3, a10, b5"
    )
    parser.add_argument("--scale-runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=WORKERS / "results.json")
    parser.add_argument("--write-results", action="store_true", help="also bench/RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="3 runs; scale 3,10")
    parser.add_argument("--setup", action="store_true", help="create the peers' virtualenvs")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument(
        "--note", action="append", default=[], help="a finding to print under Notes (repeatable)"
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        nargs="+",
        help="no measuring: rewrite the report from these JSON files (merged in order)",
    )
    args = parser.parse_args()
    if args.setup:
        setup()
        return
    if args.report_from:
        results: dict[str, Any] = {}
        for path in args.report_from:
            part = json.loads(path.read_text(encoding="utf-8"))
            cases = merge_cases(results.get("cases", []), part.pop("cases", []))
            rows = {r["sites"]: r for r in results.get("scale", []) + part.pop("scale", [])}
            results.update({k: v for k, v in part.items() if v or k not in results})
            results["cases"] = cases
            results["scale"] = [rows[k] for k in sorted(rows)]  # a later file's row wins
        results["sources"] = [str(path) for path in args.report_from]
        results["polling"] = polling_constants()  # read from the code, which may be newer
        results["notes"] = results.get("notes", []) + args.note
        if not args.no_profile and "agent_ms_per_round" not in results.get("profile", {}):
            results["profile"] = run_profile()
        finish(results, args)
        return
    if args.quick:
        args.runs, args.scale_runs, args.scale = 3, 3, "3,10"
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; known: {list(BY_NAME)}")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": args.runs,
        "machine": machine(),
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="flame-peers-data-") as tmp:
        data = Path(tmp)
        chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
        by_key = {f"{c.label}{c.sites}": c for c in CASES}
        for case in [by_key[k] for k in chosen] if systems else []:
            print(case.title, flush=True)
            outcomes = run_case(case, systems, data, args.runs)
            results["cases"].append(
                {
                    "case": case.__dict__,
                    "outcomes": [o.__dict__ for o in outcomes],
                }
            )
            print("\n".join(case_table(case, outcomes)), flush=True)
            args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
            if case.task == "logreg":
                results["compute_per_round_s"] = compute_per_round(data, case.sites)
                results["per_round"] = per_round(
                    outcomes, case.rounds, results["compute_per_round_s"]
                )
            if case.task == "mean" and case.sites == 3:
                flame = next((o for o in outcomes if o.system == SANDBOX and o.times), None)
                if flame is not None:
                    results["sandbox_phases"] = flame.record.get("phases_median_s", {})
        results["startup"] = startup_costs()
        results["polling"] = polling_constants()
        sites = [int(s) for s in args.scale.split(",") if s.strip()]
        if sites:
            print("scale", flush=True)
            results["scale"] = run_scale(sites, data, args.scale_runs)
    if not args.no_profile:
        results["profile"] = run_profile()
    results["load_average_end"] = list(os.getloadavg())
    finish(results, args)


def merge_cases(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cases of several invocations: per case, a later invocation's measured system wins."""
    merged: dict[str, dict[str, Any]] = {}
    for entry in old + new:
        key = json.dumps(entry["case"], sort_keys=True)
        target = merged.setdefault(key, {"case": entry["case"], "outcomes": []})
        for outcome in entry["outcomes"]:
            kept = [o for o in target["outcomes"] if o["system"] == outcome["system"]]
            if kept and not outcome["record"].get("times"):
                continue  # a failed rerun does not hide an earlier measurement
            target["outcomes"] = [o for o in target["outcomes"] if o not in kept] + [outcome]
    order = {p.name: i for i, p in enumerate(PEERS)}
    for entry in merged.values():
        entry["outcomes"].sort(key=lambda o: order.get(o["system"], 99))
    return list(merged.values())


def finish(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the report, write the JSON and (--write-results) bench/RESULTS.md."""
    results["goals"] = goals(results)
    text = report(results)
    print(text)
    args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"wrote {args.json}")
    if args.write_results:
        (HERE / "RESULTS.md").write_text(text, encoding="utf-8")
        print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
