"""StarModelTester: run a star analysis locally, one thread per data split plus an aggregator.

Like FLAME's tester it prints the final result (or writes it to ``result_filepath``); flame_lab
also keeps it on the instance (``.result``, ``.submission``, ``.logs``) for its magics. The
analysis code runs through the very same StarModel loop a node runs, on an in-process runtime:
no hub, no crypto. If any node raises, the others are stopped and the original exception is
re-raised here, with the analysis code's own traceback.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flame_lab.errors import PayloadError, StarError
from flame_lab.star.inprocess import Aborted, InProcessFederation, LogEntry, NodeSpec
from flame_lab.star.model import StarLocalDPModel, StarModel
from flame_lab.star.nodes import StarAggregator, StarAnalyzer
from flame_lab.star.results import check_local_dp, numbered
from flame_lab.star.runtime import FinalSubmission, OutputType, ReleasedResult, use_runtime

if TYPE_CHECKING:
    import numpy as np

PathArg = str | os.PathLike[str]


class StarModelTester:
    """Simulate a FLAME star federation in this process (FLAME's ``StarModelTester``)."""

    latest_result: Any = None
    num_iterations: int = 0

    def __init__(
        self,
        data_splits: list[Any],
        analyzer: type[StarAnalyzer],
        aggregator: type[StarAggregator],
        data_type: str,
        query: str | list[str] | None = None,
        simple_analysis: bool = True,
        output_type: OutputType | list[OutputType] = "str",
        multiple_results: bool = False,
        analyzer_kwargs: dict[str, Any] | None = None,
        aggregator_kwargs: dict[str, Any] | None = None,
        epsilon: float | None = None,
        sensitivity: float | None = None,
        result_filepath: PathArg | Sequence[PathArg] | None = None,
        *,
        rng: np.random.Generator | None = None,
        quiet: bool = False,
        stop_timeout: float = 10.0,
    ) -> None:
        """Run the analysis now. Each split is one analyzer node's ``data`` as given.

        After the run: ``result`` is what a node would release (``str`` for 'str', ``bytes``
        for 'bytes', the object for 'pickle'; a list with multiple_results), ``submission``
        the full FinalSubmission (with ``local_dp``), ``logs`` every node's log lines,
        ``models`` the StarModel of each node, ``num_iterations``/``latest_result`` the
        aggregator's. flame_lab-only keywords: ``rng`` seeds the local-DP noise, ``quiet``
        silences printing, ``stop_timeout`` bounds the wait for nodes after a failure.
        """
        if not isinstance(data_splits, list | tuple) or not data_splits:
            raise StarError(
                "data_splits must be a non-empty list: one entry per simulated data node.",
                hint="Pass e.g. data_splits=[split_1, split_2, split_3].",
            )
        use_dp = epsilon is not None or sensitivity is not None
        if use_dp:
            check_local_dp(epsilon, sensitivity)
        self.quiet = quiet
        self._print_lock = threading.Lock()
        count = len(data_splits)
        nodes = [NodeSpec(f"node_{i}", "default", split) for i, split in enumerate(data_splits)]
        nodes.append(NodeSpec(f"node_{count}", "aggregator"))
        self.federation = InProcessFederation(
            nodes, data_type=data_type, rng=rng, on_log=None if quiet else self._print_log
        )
        model_class: type[StarModel] = StarLocalDPModel if use_dp else StarModel
        args = (
            analyzer,
            aggregator,
            data_type,
            query,
            simple_analysis,
            output_type,
            multiple_results,
            analyzer_kwargs,
            aggregator_kwargs,
        )
        dp_kwargs = {"epsilon": epsilon, "sensitivity": sensitivity} if use_dp else {}
        self.models: dict[str, StarModel] = {}
        self._run(nodes, lambda: model_class(*args, **dp_kwargs), stop_timeout)

        submission = self.federation.submission
        if submission is None:
            raise StarError(
                "The analysis ended without a final result.",
                hint="The aggregator's loop must end by converging (has_converged returns True).",
            )
        self.submission: FinalSubmission = submission
        self.result: Any = submission.values
        self.logs: list[LogEntry] = list(self.federation.logs)
        model = self.models.get(self.federation.aggregator_id)
        if model is not None and model.aggregator is not None:
            self.num_iterations = model.aggregator.num_iterations
            self.latest_result = model.aggregator.latest_result
        self._report(submission, result_filepath)

    def _run(self, nodes: list[NodeSpec], make_model: Any, stop_timeout: float) -> None:
        federation = self.federation

        def node_main(spec: NodeSpec) -> None:
            try:
                with use_runtime(federation.runtime(spec.node_id)):
                    self.models[spec.node_id] = make_model()
            except Aborted:
                pass
            except BaseException as error:
                federation.node_failed(spec.node_id, error)
            finally:
                federation.node_done(spec.node_id)

        threads = [
            threading.Thread(
                target=node_main, args=(spec,), name=f"flame-star-{spec.node_id}", daemon=True
            )
            for spec in nodes
        ]
        for thread in threads:
            thread.start()
        federation.wait_until_done_or_failed()
        deadline = time.monotonic() + stop_timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if federation.failure is None:
            return
        node_id, error = federation.failure
        role = "aggregator" if node_id == federation.aggregator_id else "analyzer"
        error.add_note(f"(raised on the {role} {node_id} while StarModelTester ran the analysis)")
        stuck = sorted(federation.still_running())
        if stuck:
            error.add_note(f"(nodes {stuck} were still busy in analysis code and left running)")
        raise error

    def _print_log(self, entry: LogEntry) -> None:
        role = "aggregator" if entry.role == "aggregator" else "analyzer"
        level = "" if entry.log_type in ("normal", "info") else f" {entry.log_type.upper()}"
        self._print(f"[{role} {entry.node_id}{level}] {entry.message}")

    def _print(self, line: str) -> None:
        if not self.quiet:
            with self._print_lock:
                sys.stdout.write(line + "\n")

    def _report(
        self, submission: FinalSubmission, result_filepath: PathArg | Sequence[PathArg] | None
    ) -> None:
        results = submission.results
        several = submission.multiple_results
        for released in results:
            if released.output_type == "pickle":
                try:
                    _encode_object(released.value)
                except PayloadError as error:
                    self._print(f"Warning: a FLAME node could not release this result: {error}")
        if result_filepath is None:
            for i, released in enumerate(results):
                label = f"Final result_{i + 1}" if several else "Final result"
                self._print(f"{label}: {released.value}")
            return
        for path, released in zip(
            _result_paths(result_filepath, len(results), several), results, strict=True
        ):
            _write_result(path, released)
            self._print(f"Final result written to {path}")


def _result_paths(given: PathArg | Sequence[PathArg], count: int, several: bool) -> list[Path]:
    if isinstance(given, str | os.PathLike):
        base = os.fspath(given)
        return [Path(numbered(base, i)) for i in range(count)] if several else [Path(base)]
    paths = [Path(p) for p in given]
    if len(paths) != count:
        raise StarError(
            f"{len(paths)} result file paths were given for {count} results.",
            hint="Give one path per result, or a single path to be numbered (_1, _2, ...).",
        )
    return paths


def _write_result(path: Path, released: ReleasedResult) -> None:
    """Write one released result; 'pickle' objects are encoded as a node encodes them."""
    if released.output_type == "str":
        path.write_text(released.value, encoding="utf-8")
    elif released.output_type == "bytes":
        path.write_bytes(released.value)
    else:
        path.write_bytes(_encode_object(released.value))


def _encode_object(value: Any) -> bytes:
    """JSON, .npy or a table, exactly as flame_lab nodes release objects (never pickle)."""
    from flame_lab.security.payload import encode

    data, _content_type = encode(value)
    return data
