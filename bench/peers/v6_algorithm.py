"""Both tasks as a vantage6 algorithm: a central function that creates partial tasks per round.

Written as vantage6's algorithm template prescribes (``@algorithm_client`` for the central
part, ``@data(1)`` for the partial part, which receives the node's table as a DataFrame), so
``MockAlgorithmClient`` runs it exactly as it would run a packaged algorithm.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import peer_math
from vantage6.algorithm.tools.decorators import algorithm_client, data


@algorithm_client
def central(client: Any, task: str, rounds: int) -> Any:
    """The aggregator: one partial task per round at every organization, then combine."""
    organizations = [org["id"] for org in client.organization.list()]
    if task == "mean":
        child = client.task.create(input_={"method": "partial_mean"}, organizations=organizations)
        return peer_math.mean_combine(client.wait_for_results(child["id"]))
    weights = None
    for _ in range(rounds):
        child = client.task.create(
            input_={"method": "partial_newton", "kwargs": {"weights": weights}},
            organizations=organizations,
        )
        weights = peer_math.newton_step(weights, client.wait_for_results(child["id"]))
    return weights


@data(1)
def partial_mean(df: pd.DataFrame) -> dict[str, float]:
    return peer_math.mean_of_values(df["age"].to_numpy(dtype=float))


@data(1)
def partial_newton(df: pd.DataFrame, weights: list[float] | None) -> dict[str, list[float]]:
    return peer_math.newton_of(*peer_math.design_from_columns(df), weights)
