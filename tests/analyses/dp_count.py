"""A patient count released with local differential privacy (epsilon 1, sensitivity 1)."""

from flame.star import StarAggregator, StarAnalyzer, StarLocalDPModel


class CountAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        return data[0]["Patient?_summary=count"]["total"]


class SumAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return sum(analysis_results)

    def has_converged(self, result, last_result):
        return True


if __name__ == "__main__":
    StarLocalDPModel(
        analyzer=CountAnalyzer,
        aggregator=SumAggregator,
        data_type="fhir",
        query=["Patient?_summary=count"],
        simple_analysis=True,
        output_type="str",
        epsilon=1.0,
        sensitivity=1.0,
    )
