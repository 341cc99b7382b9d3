"""Analysis classes used across the star tests, written as researchers write them."""

from __future__ import annotations

import csv
import io
from typing import Any

from flame_lab.star import StarAggregator, StarAnalyzer


def parse_ages(blob: bytes) -> list[float]:
    return [float(row["age"]) for row in csv.DictReader(io.StringIO(blob.decode()))]


class CsvSumAnalyzer(StarAnalyzer):
    """Sums a CSV column over every object of every S3 source."""

    def __init__(self, flame, **kwargs):
        super().__init__(flame)
        self.column = kwargs.get("column", "age")

    def analysis_method(self, data, aggregator_results):
        values = [
            float(row[self.column])
            for source in data
            for blob in source.values()
            for row in csv.DictReader(io.StringIO(blob.decode()))
        ]
        return {"sum": sum(values), "n": len(values)}


class PooledMeanAggregator(StarAggregator):
    def __init__(self, flame, **kwargs):
        super().__init__(flame)
        self.digits = kwargs.get("digits")

    def aggregation_method(self, analysis_results: list[Any]) -> Any:
        total = sum(r["sum"] for r in analysis_results)
        count = sum(r["n"] for r in analysis_results)
        mean = total / count
        return round(mean, self.digits) if self.digits is not None else mean

    def has_converged(self, result, last_result):
        return True


def csv_split(ages: list[float], name: str = "patients.csv") -> list[dict[str, bytes]]:
    """One node's data: a single S3 source holding one CSV object."""
    text = "age,sex\n" + "".join(f"{a},f\n" for a in ages)
    return [{name: text.encode()}]
