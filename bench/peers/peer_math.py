"""The arithmetic of both benchmark tasks, shared word for word by every system's code.

Task (a): a one-round federated mean and count of ``age``. Task (b): logistic regression
(diabetes ~ age + bmi + hba1c) by Newton's method, a fixed number of rounds. Pure numpy and csv,
so the same file runs on a flame_lab node, in a Flower client and in a vantage6 algorithm.
"""

from __future__ import annotations

import csv
import io

import numpy as np

FEATURES = ("age", "bmi", "hba1c")
CENTRE = np.array([50.0, 27.0, 5.5])  # fixed, public scaling: no data-dependent step
SCALE = np.array([15.0, 5.0, 1.0])
ROUNDS = 10
WIDTH = len(FEATURES) + 1


def rows(table: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(table.decode("utf-8"))))


def mean_part(table: bytes) -> dict[str, float]:
    """One site's share of the mean: the sum of ages and the number of patients."""
    return mean_of_values(np.array([float(r["age"]) for r in rows(table)]))


def mean_of_values(ages: np.ndarray) -> dict[str, float]:
    return {"sum": float(ages.sum()), "n": len(ages)}


def mean_combine(parts: list[dict[str, float]]) -> dict[str, float]:
    n = sum(int(p["n"]) for p in parts)
    return {"mean_age": sum(float(p["sum"]) for p in parts) / n, "n": n}


def design(table: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Intercept plus the scaled features, and the 0/1 outcome."""
    found = rows(table)
    columns = {name: [float(r[name]) for r in found] for name in (*FEATURES, "diabetes")}
    return design_from_columns(columns)


def design_from_columns(columns) -> tuple[np.ndarray, np.ndarray]:
    """The same from columns by name (a dict of lists or a pandas DataFrame)."""
    features = np.column_stack([np.asarray(columns[f], dtype=float) for f in FEATURES])
    x = np.column_stack([np.ones(len(features)), (features - CENTRE) / SCALE])
    return x, np.asarray(columns["diabetes"], dtype=float)


def newton_part(table: bytes, weights: list[float] | None) -> dict[str, list[float]]:
    """One site's gradient and Hessian of the log-likelihood at ``weights`` (zeros at first)."""
    return newton_of(*design(table), weights)


def newton_of(x: np.ndarray, y: np.ndarray, weights: list[float] | None) -> dict[str, list]:
    w = np.zeros(WIDTH) if weights is None else np.asarray(weights, dtype=float)
    p = 1.0 / (1.0 + np.exp(-x @ w))
    gradient = x.T @ (y - p)
    hessian = (x * (p * (1 - p))[:, None]).T @ x
    return {"gradient": gradient.tolist(), "hessian": hessian.ravel().tolist()}


def newton_step(weights: list[float] | None, parts: list[dict[str, list[float]]]) -> list[float]:
    """The aggregator's move: one Newton step from the summed gradients and Hessians."""
    w = np.zeros(WIDTH) if weights is None else np.asarray(weights, dtype=float)
    gradient = sum(np.asarray(p["gradient"]) for p in parts)
    hessian = sum(np.asarray(p["hessian"]).reshape(WIDTH, WIDTH) for p in parts)
    return (w + np.linalg.solve(hessian, gradient)).tolist()


def reference(task: str, tables: dict[str, bytes], rounds: int = ROUNDS) -> object:
    """The answer computed directly, to check that every system got the same one."""
    if task == "mean":
        return mean_combine([mean_part(t) for t in tables.values()])
    weights = None
    for _ in range(rounds):
        weights = newton_step(weights, [newton_part(t, weights) for t in tables.values()])
    return weights
