"""Both tasks as an NVIDIA FLARE server workflow: broadcast each round, combine the replies."""

from __future__ import annotations

import json
import time

import peer_math
from nvflare.app_common.abstract.fl_model import FLModel
from nvflare.app_common.workflows.model_controller import ModelController


class PeerController(ModelController):
    """Round by round: send the task (and the weights) to every site, then aggregate."""

    def __init__(self, task: str = "mean", rounds: int = 10, result_file: str = "") -> None:
        super().__init__()
        self.task = task
        self.rounds = rounds
        self.result_file = result_file

    def run(self) -> None:
        start = time.perf_counter()
        if self.task == "mean":
            replies = self.send_model_and_wait(data=FLModel(params={"task": "mean"}))
            answer = peer_math.mean_combine([r.params for r in replies])
        else:
            answer = None
            for _ in range(self.rounds):
                params = {"task": "logreg", "weights": answer}
                replies = self.send_model_and_wait(data=FLModel(params=params))
                answer = peer_math.newton_step(answer, [r.params for r in replies])
        loop_s = time.perf_counter() - start
        with open(self.result_file, "w", encoding="utf-8") as fh:
            json.dump({"answer": answer, "loop_s": loop_s}, fh)
