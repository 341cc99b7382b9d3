"""Federated FHIR counts: patients, and patients' type 2 diabetes conditions."""

from flame.star import StarAggregator, StarAnalyzer, StarModel

QUERIES = ["Patient?_summary=count", "Condition?code=E11.9&_summary=count"]


class CountAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        bundles = data[0]
        return [bundles[q]["total"] for q in QUERIES]


class SumAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return {
            "patients": sum(r[0] for r in analysis_results),
            "diabetes": sum(r[1] for r in analysis_results),
        }

    def has_converged(self, result, last_result):
        return True


if __name__ == "__main__":
    StarModel(
        analyzer=CountAnalyzer,
        aggregator=SumAggregator,
        data_type="fhir",
        query=QUERIES,
        simple_analysis=True,
        output_type="pickle",
    )
