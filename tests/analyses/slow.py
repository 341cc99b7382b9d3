"""Each data node waits for a flag file that never comes: a run that is still going."""

import time

from flame.star import StarAggregator, StarAnalyzer, StarModel


class WaitingAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        self.flame.flame_log("waiting", log_type="info")
        time.sleep(120)
        return 1


class SumAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return sum(analysis_results)

    def has_converged(self, result, last_result):
        return True


if __name__ == "__main__":
    StarModel(
        analyzer=WaitingAnalyzer,
        aggregator=SumAggregator,
        data_type="s3",
        query=["patients.csv"],
        simple_analysis=True,
        output_type="pickle",
    )
