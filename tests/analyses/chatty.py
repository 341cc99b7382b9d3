"""Logs many lines from every node: all of them must reach the researcher."""

from flame.star import StarAggregator, StarAnalyzer, StarModel


class ChattyAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        for i in range(70):
            self.flame.flame_log(f"line {i}", log_type="info")
        return 100  # (a 1 would be a small count: the node's disclosure rules suppress it)


class SumAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return sum(analysis_results)

    def has_converged(self, result, last_result):
        return True


if __name__ == "__main__":
    StarModel(
        analyzer=ChattyAnalyzer,
        aggregator=SumAggregator,
        data_type="s3",
        query=["patients.csv"],
        simple_analysis=True,
        output_type="pickle",
    )
