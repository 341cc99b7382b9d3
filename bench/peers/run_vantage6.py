"""vantage6's MockAlgorithmClient on both tasks (vantage6-algorithm-tools, no server, no Docker).

Each timed run builds the mock federation from the sites' CSV files (vantage6 nodes load
their database per task, so the load is part of the run), creates the central task at the
first organization and reads its result.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import harness

logging.disable(logging.INFO)  # the mock logs every step at INFO; keep the worker's output short


def main() -> None:
    args = harness.arguments()
    from vantage6.algorithm.tools.mock_client import MockAlgorithmClient

    sys.path.insert(0, str(Path(__file__).parent))
    harness.tables(args.data)  # fail early on a bad folder
    paths = [Path(args.data) / name / "patients.csv" for name in harness.site_names(args.data)]

    def make_task(rounds: int) -> Any:
        def task() -> Any:
            client = MockAlgorithmClient(
                datasets=[[{"database": str(p), "db_type": "csv"}] for p in paths],
                module="v6_algorithm",
            )
            central = client.task.create(
                input_={"method": "central", "kwargs": {"task": args.task, "rounds": rounds}},
                organizations=[client.organization_id],
            )
            (answer,) = client.wait_for_results(central["id"])
            return answer

        return task

    record = harness.measure_rounds(make_task, args)
    from importlib.metadata import version

    harness.emit(
        {"system": "vantage6 mock", "version": version("vantage6-algorithm-tools"), **record}
    )


if __name__ == "__main__":
    main()
