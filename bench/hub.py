"""Sandbox hub throughput through PrivateAIM's flame_hub client on loopback.

Starts the hub as its own process (as `sandbox up` does), fills it with 1, 10 and 100
analyses, and times ``get_analysis`` and ``find_analysis_nodes`` one request at a time:
requests per second, p50 and p99 latency. Prints figures; never passes or fails.

    /work/venv/bin/python bench/hub.py [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flame_hub import CoreClient
from flame_hub.auth import PasswordAuth

from flame_lab.sandbox.hub.provision import node_names, provision
from flame_lab.sandbox.hub.store import Store


def start_hub(home: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flame_lab.sandbox.hub", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = home / "hub.json"
        if state.exists():
            return proc, json.loads(state.read_text())["url"]
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the hub did not start")


def timed(call, n: int) -> tuple[float, float, float]:
    call()  # warm up
    latencies = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return n / total, statistics.median(latencies) * 1000, p99 * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        store = Store(home)
        p = provision(store, node_names(3))
        store.close()
        proc, url = start_hub(home)
        try:
            auth = PasswordAuth(p.username, p.password, base_url=f"{url}/auth")
            core = CoreClient(f"{url}/core", auth=auth)
            print(f"{'analyses':>8} {'call':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
            made = []
            for target in (1, 10, 100):
                while len(made) < target:
                    made.append(core.create_analysis(p.project_id, name=f"bench-{len(made)}"))
                probe = made[len(made) // 2]
                cases = {
                    "get_analysis": lambda probe=probe: core.get_analysis(probe.id),
                    "find_analysis_nodes": lambda probe=probe: core.find_analysis_nodes(
                        filter={"analysis_id": probe.id}
                    ),
                }
                for name, call in cases.items():
                    rps, p50, p99 = timed(call, args.requests)
                    print(f"{target:>8} {name:<22} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
