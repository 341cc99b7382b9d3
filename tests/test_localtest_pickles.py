"""%flame test carries what FLAME pickles (a model, a set) as the sandbox does, and shows it."""

from __future__ import annotations

from flame_lab import localtest
from flame_lab.draft import Draft

ENTRY = """
import csv, io
from flame.star import StarAnalyzer, StarAggregator, StarModel


class Threshold:
    def __init__(self, value):
        self.value = value


class Ages(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, model):
        rows = csv.DictReader(io.StringIO(data[0]["patients.csv"].decode()))
        ages = [float(r["age"]) for r in rows]
        if model is None:
            return {"total": sum(ages), "n": len(ages)}
        return {"bands": sorted({int(a // 10) * 10 for a in ages if a > model.value})}


class Agg(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, results):
        if "total" in results[0]:
            return Threshold(sum(r["total"] for r in results) / sum(r["n"] for r in results))
        return {band for r in results for band in r["bands"]}

    def has_converged(self, result, last_result):
        return isinstance(result, set)


StarModel(Ages, Agg, "s3", query=["patients.csv"], simple_analysis=False, output_type="pickle")
"""


def test_a_model_goes_out_to_the_analyzers_and_a_set_comes_back_as_the_result():
    draft = Draft()
    draft.add_cell("%%flame", ENTRY)
    report = localtest.run_local_test(draft, nodes=2)
    assert report.ok, report.to_text()
    assert isinstance(report.result, set) and report.result
    assert all(band % 10 == 0 for band in report.result)


def test_a_value_no_node_could_send_fails_the_test_at_once_naming_it():
    draft = Draft()
    draft.add_cell(
        "%%flame",
        ENTRY.replace(
            'return Threshold(sum(r["total"] for r in results) / sum(r["n"] for r in results))',
            'return {"predict": lambda x: x > 50}',
        ),
    )
    report = localtest.run_local_test(draft, nodes=2, timeout=60)
    assert not report.ok
    assert "did not finish" not in (report.failure or "")
    aggregator = next(n for n in report.nodes if n.role == "aggregator")
    assert "cannot travel between FLAME nodes" in (aggregator.error or "")
