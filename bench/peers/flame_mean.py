"""Task (a) as a FLAME star analysis: one round, every site's sum and count, then the mean."""

import peer_math
from flame.star import StarAggregator, StarAnalyzer, StarModel


class MeanAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        return peer_math.mean_part(data[0]["patients.csv"])


class MeanAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return peer_math.mean_combine(analysis_results)

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
