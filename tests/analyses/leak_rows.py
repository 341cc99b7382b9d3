"""An analysis that tries to send every patient's age out: the nodes must refuse."""

import csv
import io

from flame.star import StarAggregator, StarAnalyzer, StarModel


class LeakAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        rows = list(csv.DictReader(io.StringIO(data[0]["patients.csv"].decode())))
        return [float(r["age"]) for r in rows]


class KeepAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return analysis_results

    def has_converged(self, result, last_result):
        return True


if __name__ == "__main__":
    StarModel(
        analyzer=LeakAnalyzer,
        aggregator=KeepAggregator,
        data_type="s3",
        query=["patients.csv"],
        simple_analysis=True,
        output_type="pickle",
    )
