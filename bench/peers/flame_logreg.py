"""Task (b) as a FLAME star analysis: Newton's method for a fixed number of rounds."""

import json
import time

import peer_math
from flame.star import StarAggregator, StarAnalyzer, StarModel

ROUNDS = peer_math.ROUNDS


class NewtonAnalyzer(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        return peer_math.newton_part(data[0]["patients.csv"], aggregator_results)


class NewtonAggregator(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)
        self.weights = None
        self.rounds = 0
        self.stamps = []  # when each round's results were all in: the benchmark's in-loop time

    def aggregation_method(self, analysis_results):
        self.stamps.append(time.time())
        self.weights = peer_math.newton_step(self.weights, analysis_results)
        self.rounds += 1
        return self.weights

    def has_converged(self, result, last_result):
        if self.rounds >= ROUNDS:
            self.flame.flame_log("round stamps: " + json.dumps(self.stamps), log_type="info")
            return True
        return False


if __name__ == "__main__":
    StarModel(
        analyzer=NewtonAnalyzer,
        aggregator=NewtonAggregator,
        data_type="s3",
        query=["patients.csv"],
        simple_analysis=False,
        output_type="pickle",
    )
