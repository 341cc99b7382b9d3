"""Soak and load of the sandbox: does time, memory or disk drift as analyses pile up?

In a fresh FLAME_LAB_HOME with a 3-node sandbox it runs the federated mean
(flame_lab/examples/mean_age.py) ``--analyses`` times one after another (submit -> decrypted
result, each checked against the first), sampling after each the resident memory of the
hub and agents and the disk under the sandbox. Then ``--load`` concurrent researchers (threads,
each with its own Federation) submit ``--each`` analyses at once. Then every analysis is
cancelled (the hub deletes it) and `sandbox gc` runs. It prints, as ratios measured in this run:

- time: median of the last 10 % of the soak / median of the first 10 %;
- memory: hub + agents RSS at the end / after the first 10 %;
- disk per analysis while kept, and what is left per analysis after delete + gc;
- load: correct results / submitted, and its median time / the soak's median.

A script, never a test. ``--quick``: 20 analyses, load 3 x 3.

    .venv/bin/python bench/soak.py [--analyses 100] [--load 5] [--each 10] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import flame_lab as fl
from flame_lab.errors import FlameLabError
from flame_lab.sandbox import daemon
from flame_lab.sandbox.hub.gc import disk_usage
from flame_lab.security import keys

MEAN_AGE = Path(fl.__file__).parent / "examples" / "mean_age.py"
PASSPHRASE = "bench soak passphrase"  # noqa: S105 (a throwaway key in a temporary home)
WAIT_SECONDS = 600.0  # a bound for a broken run, never reached when things work
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kib(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE_KIB
    except (OSError, ValueError, IndexError):
        return 0


def sandbox_rss_kib(home: Path) -> int:
    """Hub + agents (the long-lived processes; analysis processes come and go)."""
    info = daemon.status(home)
    return rss_kib(info["pid"]) + sum(rss_kib(n["agentPid"]) for n in info["nodes"])


def one(fed: fl.Federation, draft: fl.Draft) -> tuple[float, Any, str]:
    started = time.perf_counter()
    run = fed.submit(draft, name="soak")
    run.wait(timeout=WAIT_SECONDS)
    result = run.result()
    return time.perf_counter() - started, result, run.id


def tenth(values: list[float], last: bool) -> list[float]:
    k = max(1, len(values) // 10)
    return values[-k:] if last else values[:k]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyses", type=int, default=100)
    parser.add_argument("--load", type=int, default=5, help="concurrent researchers")
    parser.add_argument("--each", type=int, default=10, help="analyses per researcher")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.analyses, args.load, args.each = 20, 3, 3
    print(f"load average: {os.getloadavg()}  (the machine may be shared)")

    with tempfile.TemporaryDirectory(prefix="flame-soak-") as tmp:
        home = Path(tmp)
        os.environ["FLAME_LAB_HOME"] = str(home)
        os.environ["FLAME_LAB_PASSPHRASE"] = PASSPHRASE
        keys.save_identity(home / "keys" / "identity.json", keys.Identity.generate(), PASSPHRASE)
        sandbox = home / "sandbox"
        daemon.up(sandbox)
        try:
            return run_all(args, sandbox)
        finally:
            daemon.down(sandbox)


def run_all(args: argparse.Namespace, sandbox: Path) -> dict[str, Any]:
    draft = fl.Draft.from_files({"mean_age.py": MEAN_AGE.read_text()}, entrypoint="mean_age.py")
    fed = fl.connect()
    _, expected, first_id = one(fed, draft)  # unlocks the key; not timed
    ids = [first_id]
    disk_start = disk_usage(sandbox)
    times: list[float] = []
    memory: list[int] = []
    for i in range(args.analyses):
        seconds, result, analysis_id = one(fed, draft)
        assert result == expected, f"analysis {i} gave {result!r}, not {expected!r}"
        times.append(seconds)
        ids.append(analysis_id)
        memory.append(sandbox_rss_kib(sandbox))
    disk_kept = disk_usage(sandbox)

    # load: researchers at once (threads; each its own connection)
    load_times: list[float] = []
    correct = 0
    lock = threading.Lock()

    failures: list[str] = []

    def researcher() -> None:
        nonlocal correct
        try:
            mine = fl.connect()
        except FlameLabError as exc:
            with lock:
                failures.extend([f"connect: {exc.message}"] * args.each)
            return
        for _ in range(args.each):
            try:
                seconds, result, analysis_id = one(mine, draft)
            except FlameLabError as exc:  # counted and shown, not hidden
                with lock:
                    failures.append(exc.message)
                continue
            with lock:
                load_times.append(seconds)
                ids.append(analysis_id)
                correct += result == expected

    started = time.perf_counter()
    threads = [threading.Thread(target=researcher) for _ in range(args.load)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load_wall = time.perf_counter() - started

    for analysis_id in ids:
        fed.attach(analysis_id).cancel()  # the hub deletes it and reclaims its files
    reclaimed = daemon.gc(sandbox)
    disk_after = disk_usage(sandbox)
    parts = {
        "database": sum(p.stat().st_size for p in sandbox.glob("hub.sqlite3*")),
        "blobs": disk_usage(sandbox / "blobs"),
        "logs": sum(p.stat().st_size for p in sandbox.rglob("*.log")),
        "nodes": disk_usage(sandbox / "nodes"),
    }

    n = len(ids)
    figures = {
        "analyses": args.analyses,
        "median_s": statistics.median(times),
        "time_last_over_first": statistics.median(tenth(times, True))
        / statistics.median(tenth(times, False)),
        "memory_first_mib": statistics.median(tenth(memory, False)) / 1024,
        "memory_last_mib": statistics.median(tenth(memory, True)) / 1024,
        "memory_last_over_first": statistics.median(tenth(memory, True))
        / statistics.median(tenth(memory, False)),
        "disk_per_analysis_kept_kib": (disk_kept - disk_start) / args.analyses / 1024,
        "disk_per_analysis_after_delete_kib": (disk_after - disk_start) / n / 1024,
        "gc": reclaimed,
        "left_after_gc_bytes": parts,
        "load": f"{args.load}x{args.each}",
        "load_correct": correct,
        "load_submitted": args.load * args.each,
        "load_median_s": statistics.median(load_times) if load_times else None,
        "load_median_over_soak_median": (
            statistics.median(load_times) / statistics.median(times) if load_times else None
        ),
        "load_wall_s": load_wall,
    }
    print(
        f"soak: {args.analyses} analyses one after another, median {figures['median_s']:.2f} s; "
        f"last 10 % / first 10 %: time {figures['time_last_over_first']:.2f}x, "
        f"memory (hub + agents) {figures['memory_last_over_first']:.2f}x "
        f"({figures['memory_first_mib']:.0f} -> {figures['memory_last_mib']:.0f} MiB)"
    )
    print(
        f"disk: {figures['disk_per_analysis_kept_kib']:.1f} KiB per analysis while kept; "
        f"{figures['disk_per_analysis_after_delete_kib']:.1f} KiB per analysis left after "
        f"cancel (delete) + sandbox gc (reclaimed {reclaimed['freed']:,} bytes by gc itself)"
    )
    print(
        "left after gc: "
        + ", ".join(f"{name} {size / 1024:.0f} KiB" for name, size in parts.items())
        + " (logs and the nodes' folders, incl. their logs and ledgers, keep history)"
    )
    print(
        f"load: {args.load} researchers x {args.each}: {correct}/{args.load * args.each} correct, "
        f"median {figures['load_median_s'] or 0:.2f} s = "
        f"{figures['load_median_over_soak_median'] or 0:.2f}x the soak's, wall {load_wall:.1f} s"
    )
    for reason, count in sorted(Counter(failures).items(), key=lambda x: -x[1]):
        print(f"  load failure x{count}: {reason}")
    figures["load_failures"] = dict(Counter(failures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
