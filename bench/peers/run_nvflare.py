"""NVIDIA FLARE's simulator (``FedJob.simulator_run``) on both tasks.

The server runs PeerController (bench/peers/nvflare_controller.py); each site runs
nvflare_client.py through FLARE's Client API in-process (``ScriptRunner``, raw exchange
format). A timed run is one ``simulator_run``: the simulated server and clients start, run
the job and stop, as a researcher's ``nvflare simulator`` call does.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import harness
from nvflare.client.config import ExchangeFormat
from nvflare.fuel.utils.constants import FrameworkType
from nvflare.job_config.api import FedJob
from nvflare.job_config.script_runner import ScriptRunner
from nvflare_controller import PeerController

HERE = Path(__file__).parent


def main() -> None:
    args = harness.arguments()
    harness.tables(args.data)  # fail early on a bad folder
    logging.disable(logging.WARNING)

    loops: dict[int, list[float]] = {}

    def make_task(rounds: int) -> Any:
        def task() -> Any:
            work = Path(tempfile.mkdtemp(prefix="nvflare-peers-"))
            try:
                result = work / "answer.json"
                job = FedJob(name=f"peers-{args.task}", min_clients=args.sites)
                job.to(PeerController(args.task, rounds, str(result)), "server")
                job.to(str(HERE / "peer_math.py"), "server")
                for i in range(args.sites):
                    site = f"site-{i + 1}"
                    runner = ScriptRunner(
                        script=str(HERE / "nvflare_client.py"),
                        script_args=f"--data {args.data}",
                        framework=FrameworkType.RAW,
                        server_expected_format=ExchangeFormat.RAW,
                    )
                    job.to(runner, site)
                    job.to(str(HERE / "peer_math.py"), site)
                job.simulator_run(str(work / "workspace"), threads=args.sites)
                if not result.exists():
                    raise RuntimeError(f"the simulator ended without an answer (see {work})")
                found = json.loads(result.read_text(encoding="utf-8"))
                loops.setdefault(rounds, []).append(found["loop_s"])
                return found["answer"]
            finally:
                shutil.rmtree(work, ignore_errors=True)

        return task

    record = harness.measure_rounds(make_task, args)
    from importlib.metadata import version

    # in-loop seconds: from the first task sent to the answer, without the simulator's start
    record["loop_times"] = loops[args.rounds][1:]

    harness.emit({"system": "NVFlare simulator", "version": version("nvflare"), **record})


if __name__ == "__main__":
    main()
