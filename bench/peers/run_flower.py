"""Flower's simulation runtime (``flwr.simulation.run_simulation``, Ray backend) on both tasks.

A ServerApp sends one ``query`` message per round to every virtual SuperNode; each ClientApp
answers from its own site's ``patients.csv`` with peer_math, as flame_lab's analyzers do. A
timed run is one ``run_simulation`` call: what a researcher waits for from start to answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # loopback only: no usage pings
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Ray's raylet gives its Python agents 30 s to start; on a loaded 2-core machine they take
# longer and Ray fails to start (a FailedStart, retried): wait longer, collect no metrics
os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
os.environ.setdefault("RAY_enable_metrics_collection", "0")

import harness
import peer_math
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation


def client_app(tables: list[bytes]) -> ClientApp:
    app = ClientApp()

    @app.query()
    def query(message: Message, context: Context) -> Message:
        table = tables[int(context.node_config["partition-id"])]
        config = message.content["config"]
        if config["task"] == "mean":
            part = peer_math.mean_part(table)
        else:
            weights = list(config["weights"]) if config["round"] > 0 else None
            part = peer_math.newton_part(table, weights)
        return Message(RecordDict({"part": ConfigRecord(part)}), reply_to=message)

    return app


def end_children() -> None:
    """Kill this process's child processes (what a failed Ray start leaves behind)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            with contextlib.suppress(OSError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def wait_for_nodes(grid: Grid, count: int, timeout: float = 60.0) -> list[int]:
    """SuperNodes register asynchronously: wait (bounded) until all ``count`` are there."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = list(grid.get_node_ids())
        if len(nodes) >= count:
            return nodes
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {count} SuperNodes registered")
        time.sleep(0.01)


def server_app(task: str, sites: int, rounds: int, out: dict[str, Any]) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        nodes = wait_for_nodes(grid, sites)
        start = time.perf_counter()
        weights: list[float] | None = None
        for round_number in range(1 if task == "mean" else rounds):
            config = {"task": task, "round": round_number, "weights": weights or [0.0]}
            messages = [
                Message(
                    RecordDict({"config": ConfigRecord(config)}),
                    dst_node_id=n,
                    message_type="query",
                )
                for n in nodes
            ]
            replies = list(grid.send_and_receive(messages))
            errors = [r.error for r in replies if r.has_error()]
            if errors or len(replies) != len(nodes):
                raise RuntimeError(f"{len(replies)}/{len(nodes)} replies, errors: {errors}")
            parts = [dict(r.content["part"]) for r in replies]
            if task == "mean":
                out["answer"] = peer_math.mean_combine(parts)
            else:
                weights = peer_math.newton_step(weights, parts)
                out["answer"] = weights
        out["loop_s"] = time.perf_counter() - start

    return app


RUN_LIMIT_S = 300.0  # one run_simulation; under heavy load Ray's driver can hang in ray.init


def emit_partial(done: dict[str, Any], loops: dict[int, list[float]], rounds: int, why: str):
    """The runs that did complete, marked as cut short (the orchestrator shows n)."""
    from harness import RETRIES, TIMES

    if TIMES[1:]:
        harness.emit(
            {
                **done,
                "times": TIMES[1:],
                "cold_s": TIMES[0],
                "loop_times": loops.get(rounds, [])[1:],
                "failed_starts": RETRIES["failed_starts"],
                "cut_short": why,
            }
        )


def watchdog(done: dict[str, Any], loops: dict[int, list[float]], rounds: int) -> None:
    """End the worker if one run hangs, reporting the runs completed so far (if any)."""
    import threading

    from harness import TIMES

    def guard() -> None:
        while True:
            count = len(TIMES)
            time.sleep(RUN_LIMIT_S)
            if len(TIMES) == count:  # no run finished in RUN_LIMIT_S
                why = f"a run did not end within {RUN_LIMIT_S:.0f} s (Ray)"
                emit_partial(done, loops, rounds, why)
                sys.stderr.write(why + "\n")
                sys.stderr.flush()
                os._exit(3)

    threading.Thread(target=guard, daemon=True).start()


def main() -> None:
    args = harness.arguments()
    tables = list(harness.tables(args.data).values())
    loops: dict[int, list[float]] = {}

    def make_task(rounds: int) -> Any:
        def task() -> Any:
            out: dict[str, Any] = {}
            try:
                run_simulation(
                    server_app=server_app(args.task, args.sites, rounds, out),
                    client_app=client_app(tables),
                    num_supernodes=args.sites,
                    backend_config={
                        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                        "init_args": {"include_dashboard": False, "logging_level": "error"},
                    },
                )
            except RuntimeError as error:
                if "answer" not in out:  # Ray did not come up: not Flower's task time
                    import ray

                    ray.shutdown()
                    end_children()  # a failed start leaves Ray's daemons running
                    raise harness.FailedStart(str(error)) from error
                raise
            if "answer" not in out:
                raise RuntimeError("Flower's simulation ended without an answer")
            loops.setdefault(rounds, []).append(out["loop_s"])
            done["answer"] = out["answer"]
            return out["answer"]

        return task

    from importlib.metadata import version

    done: dict[str, Any] = {"system": "Flower simulation", "version": version("flwr")}
    watchdog(done, loops, args.rounds)
    try:
        record = harness.measure_rounds(make_task, args)
    except harness.FailedStart as error:
        emit_partial(done, loops, args.rounds, f"Ray failed to start 5 times in a row: {error}")
        raise

    # in-loop seconds: from the first message sent to the answer, without Ray's start and stop
    record["loop_times"] = loops[args.rounds][1:]
    harness.emit({**done, **record})


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)  # Flower's and Ray's threads can keep a failed run's process alive
    sys.stdout.flush()
    os._exit(0)
