"""Federated mean age over each node's patients.csv (one round)."""

import csv
import io

from flame.star import StarAggregator, StarAnalyzer, StarModel


class MeanAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        rows = list(csv.DictReader(io.StringIO(data[0]["patients.csv"].decode())))
        return {"sum": sum(float(r["age"]) for r in rows), "n": len(rows)}


class MeanAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        n = sum(r["n"] for r in analysis_results)
        return {"mean_age": sum(r["sum"] for r in analysis_results) / n, "n": n}

    def has_converged(self, result, last_result):
        return True


if __name__ == "__main__":
    StarModel(
        analyzer=MeanAnalyzer,
        aggregator=MeanAggregator,
        data_type="s3",
        query=["patients.csv"],
        simple_analysis=True,
        output_type="pickle",
    )
