"""Where a round of task (b) goes in the sandbox: py-spy on the aggregator's node agent.

Starts a sandbox with 5 sites, runs the 10-round logistic regression once to warm up, then
again while ``py-spy record --subprocesses --idle`` samples the aggregator's agent (and the
analysis process it starts). Prints, per round, the wall time of the agent's message thread
split by what it was doing, and the busiest lines of flame_lab's own code.

    /work/venv/bin/python bench/peers/profile_sandbox.py [--py-spy PATH] [--rate 100]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import peer_math
from run_flame import ENTRY, analysis_files

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
MESSENGER = "sandbox/node/messenger.py"


def parse(frame: str) -> tuple[str, str, int]:
    """(function, file, line) of one py-spy frame: ``function (file:line)``."""
    found = FRAME.match(frame)
    if not found:
        return frame, "", 0
    func = found.group("func").rsplit(".", 1)[-1]  # py-spy may qualify: Class.method
    return func, found.group("file"), int(found.group("line"))


def find_py_spy(given: str | None) -> str:
    beside = Path(sys.prefix).parent / "bench-venv" / "bin" / "py-spy"
    for candidate in (given, shutil.which("py-spy"), str(beside)):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("py-spy not found: pip install py-spy (any virtualenv) and pass --py-spy")


def classify(frames: list[str]) -> str | None:
    """What the agent's thread serving the analysis's messages was doing in one sample."""
    parsed = [parse(f) for f in frames]
    mine = [(func, line) for func, file, line in parsed if file.endswith(MESSENGER)]
    if not mine:
        return None
    funcs = {func for func, _ in mine}
    if "seal_message" in {func for func, _, _ in parsed}:
        return "sealing messages (ECDH + AES-GCM)"
    if "_accept" in funcs:
        return "opening messages (ECDH + AES-GCM)"
    if "_fetch" in funcs:
        return "waiting for messages at the hub (long-polled HTTP GET)"
    if "_post" in funcs or "send" in funcs:
        return "posting messages to the hub (HTTP POST, one per broadcast)"
    return "other message handling"


def hub_lines(raw: Path, per_round: float) -> collections.Counter[str]:
    """The hub's busy samples by the innermost line of flame_lab's code (and its leaf)."""
    found: collections.Counter[str] = collections.Counter()
    for row in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = row.rpartition(" ")
        frames = [parse(f) for f in stack.split(";")]
        leaf = frames[-1]
        if leaf[0] in ("select", "poll", "epoll", "_run_once", "wait") or "selectors" in leaf[1]:
            continue  # the event loop waiting for work
        for func, file, line in reversed(frames):
            if "flame_lab/" in file:
                where = "flame_lab/" + file.split("flame_lab/", 1)[1]
                found[f"{where}:{line} {func} <- {leaf[0]} ({Path(leaf[1]).name}:{leaf[2]})"] += (
                    int(count) * per_round
                )
                break
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--py-spy", default=None)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--sites", type=int, default=5)
    args = parser.parse_args()
    py_spy = find_py_spy(args.py_spy)
    home = Path(tempfile.mkdtemp(prefix="flame-peers-profile-"))
    passphrase = secrets.token_urlsafe(16)
    os.environ["FLAME_LAB_HOME"] = str(home)
    os.environ["FLAME_LAB_PASSPHRASE"] = passphrase
    import flame_lab as fl
    from flame_lab.sandbox import daemon
    from flame_lab.sandbox.node.layout import NodeFolder
    from flame_lab.security import keys

    keys.save_identity(home / "keys" / "identity.json", keys.Identity.generate(), passphrase)
    daemon.up(home / "sandbox", nodes=args.sites + 1, timeout=600)
    raw, hub_raw = home / "py-spy-aggregator.txt", home / "py-spy-hub.txt"
    try:
        fed = fl.connect()
        rounds = peer_math.ROUNDS
        draft = fl.Draft.from_files(analysis_files("logreg", rounds), entrypoint=ENTRY["logreg"])
        run = fed.submit(draft)
        run.wait(timeout=600)
        run.result()
        pid = int(NodeFolder.of(home / "sandbox", "aggregator").pid.read_text().strip())
        hub_pid = int((home / "sandbox" / daemon.PID_FILE).read_text().strip())
        options = ["--subprocesses", "--idle", "--threads", "--rate", str(args.rate)]
        spies = [
            subprocess.Popen(
                [py_spy, "record", "--pid", str(p), *options, "--format", "raw", "-o", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for p, out in ((pid, raw), (hub_pid, hub_raw))
        ]
        time.sleep(1.0)  # py-spy attaches
        t0 = time.perf_counter()
        run = fed.submit(draft)
        run.wait(timeout=600)
        run.result()
        elapsed = time.perf_counter() - t0
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    finally:
        daemon.down(home / "sandbox")
    activity: collections.Counter[str] = collections.Counter()
    lines: collections.Counter[str] = collections.Counter()
    for row in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = row.rpartition(" ")
        frames = stack.split(";")
        label = classify(frames)
        if label is not None:
            activity[label] += int(count)
        if label is None or label.startswith("sleeping"):
            continue
        for func, file, line in reversed([parse(f) for f in frames]):
            if "flame_lab/" in file:  # the innermost frame of flame_lab's own code
                where = "flame_lab/" + file.split("flame_lab/", 1)[1]
                lines[f"{where}:{line} {func}"] += int(count)
                break
    per_round = 1000.0 / args.rate / rounds
    print(f"submit -> result: {elapsed:.2f} s for {rounds} rounds at {args.sites} sites")
    print(f"\nThe aggregator agent's message threads, ms per round ({args.rate} samples/s):")
    for label, count in activity.most_common():
        print(f"  {count * per_round:8.1f}  {label}")
    print("\nWhere the non-sleeping part is, innermost flame_lab line, ms per round:")
    for where, count in lines.most_common(12):
        print(f"  {count * per_round:8.1f}  {where}")
    print("\nThe hub (all threads, not idle), innermost flame_lab line, ms per round:")
    for where, ms in hub_lines(hub_raw, per_round).most_common(12):
        print(f"  {ms:8.1f}  {where}")
    threads = {
        row.split(";")[1] for row in raw.read_text().splitlines() if classify(row.split(";"))
    }
    print(f"\n({len(threads)} thread(s) handled messages)")
    harness.emit(
        {
            "sites": args.sites,
            "rounds": rounds,
            "rate": args.rate,
            "elapsed_s": elapsed,
            "agent_ms_per_round": {k: v * per_round for k, v in activity.most_common()},
            "agent_lines_ms_per_round": {k: v * per_round for k, v in lines.most_common(8)},
            "hub_lines_ms_per_round": dict(hub_lines(hub_raw, per_round).most_common(8)),
            "hub_busy_ms_per_round": sum(hub_lines(hub_raw, per_round).values()),
        }
    )
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
