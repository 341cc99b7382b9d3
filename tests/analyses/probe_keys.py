"""Tries to read the node's own key file and to reach the network from inside the analysis.

The path of the key file is passed in via analyzer_kwargs by the test that submits this.
"""

import socket

from flame.star import StarAggregator, StarAnalyzer, StarModel

KEY_FILES = {}  # node name -> path, filled in by the test


class ProbeAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        seen = {}
        for path in KEY_FILES.values():
            try:
                with open(path, "rb") as handle:
                    handle.read(1)
                seen[path] = "read"
            except OSError as exc:
                seen[path] = type(exc).__name__
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=2).close()
            network = "reached"
        except OSError as exc:
            network = f"errno {exc.errno}"
        return {"files": seen, "network": network}


class CollectAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return analysis_results

    def has_converged(self, result, last_result):
        return True


if __name__ == "__main__":
    StarModel(
        analyzer=ProbeAnalyzer,
        aggregator=CollectAggregator,
        data_type="s3",
        query=["patients.csv"],
        simple_analysis=True,
        output_type="pickle",
    )
