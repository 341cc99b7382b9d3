"""Federated logistic regression (Newton's method): diabetes ~ age + bmi + hba1c.

Each round the nodes return the gradient and Hessian of their log-likelihood at the current
weights; the aggregator takes one Newton step and stops when the step is tiny.
"""

import csv
import io

import numpy as np
from flame.star import StarAggregator, StarAnalyzer, StarModel

FEATURES = ["age", "bmi", "hba1c"]


def design(table: bytes):
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    x = np.array([[1.0] + [float(r[f]) for f in FEATURES] for r in rows])
    y = np.array([float(r["diabetes"]) for r in rows])
    x[:, 1:] = (x[:, 1:] - [50.0, 27.0, 5.5]) / [15.0, 5.0, 1.0]  # fixed, public scaling
    return x, y


class NewtonAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        x, y = design(data[0]["patients.csv"])
        w = np.zeros(x.shape[1]) if aggregator_results is None else np.array(aggregator_results)
        p = 1.0 / (1.0 + np.exp(-x @ w))
        gradient = x.T @ (y - p)
        hessian = (x * (p * (1 - p))[:, None]).T @ x
        return {"gradient": gradient.tolist(), "hessian": hessian.ravel().tolist()}


class NewtonAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)
        self.weights = np.zeros(len(FEATURES) + 1)
        self.steps = []

    def aggregation_method(self, analysis_results):
        k = len(self.weights)
        gradient = sum(np.array(r["gradient"]) for r in analysis_results)
        hessian = sum(np.array(r["hessian"]).reshape(k, k) for r in analysis_results)
        step = np.linalg.solve(hessian, gradient)
        self.weights = self.weights + step
        self.steps.append(float(np.abs(step).max()))
        return self.weights.tolist()

    def has_converged(self, result, last_result):
        return self.steps[-1] < 1e-8


if __name__ == "__main__":
    StarModel(
        analyzer=NewtonAnalyzer,
        aggregator=NewtonAggregator,
        data_type="s3",
        query=["patients.csv"],
        simple_analysis=False,
        output_type="pickle",
    )
