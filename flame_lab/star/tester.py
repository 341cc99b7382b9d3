"""StarModelTester: run a star analysis locally, one thread per data split plus an aggregator.

Like FLAME's tester it prints the final result (or writes it to ``result_filepath``, 'pickle'
results as pickles); flame_lab
also keeps it on the instance (``.result``, ``.submission``, ``.logs``) for its magics. The
analysis code runs through the very same StarModel loop a node runs, on an in-process runtime:
no hub, no crypto. If any node raises, the others are stopped and the original exception is
re-raised here, with the analysis code's own traceback.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flame_lab.errors import StarError
from flame_lab.star.inprocess import Aborted, InProcessFederation, LogEntry, NodeSpec
from flame_lab.star.model import StarLocalDPModel, StarModel
from flame_lab.star.nodes import StarAggregator, StarAnalyzer
from flame_lab.star.results import numbered
from flame_lab.star.runtime import FinalSubmission, OutputType, use_runtime

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
        node_roles: list[str] | None = None,
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

        The parameters are FLAME's, in its order (``node_roles``, one role per split, is
        'default' for each: the tester adds the aggregator after the splits). After the run:
        ``result`` is what a node would release (``str`` for 'str', ``bytes`` for 'bytes',
        the object for 'pickle'; a list with multiple_results), ``submission`` the full
        FinalSubmission (with ``local_dp``), ``logs`` every node's log lines, ``models`` the
        StarModel of each node, ``num_iterations``/``latest_result`` the aggregator's.
        flame_lab-only keywords: ``rng`` seeds the local-DP noise, ``quiet`` silences
        printing, ``stop_timeout`` bounds the wait for nodes after a failure.
        """
        if not isinstance(data_splits, list | tuple) or not data_splits:
            raise StarError(
                "data_splits must be a non-empty list: one entry per simulated data node.",
                hint="Pass e.g. data_splits=[split_1, split_2, split_3].",
            )
        _check_roles(node_roles, len(data_splits))
        self.quiet = quiet
        self._print_lock = threading.Lock()
        self.test_input(data_splits[0], echo=self._print)
        use_dp = epsilon is not None or sensitivity is not None
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
        self.write_result(
            [r.value for r in submission.results]
            if submission.multiple_results
            else submission.results[0].value,
            [r.output_type for r in submission.results]
            if submission.multiple_results
            else submission.results[0].output_type,
            _paths(result_filepath),
            submission.multiple_results,
            echo=self._print,
        )

    @staticmethod
    def test_input(data: Any, *, echo: Callable[[str], None] = print) -> None:
        """Warn when a split is not shaped as a node's data: a list (one entry per data
        source) of dicts ({query: Bundle} for fhir, {object key: bytes} for s3)."""
        is_list = isinstance(data, list)
        has_sources = is_list and len(data) > 0
        has_dicts = has_sources and isinstance(data[0], dict)
        if has_dicts:
            return
        advice = [
            "Warning: on a FLAME node, data is always a list with one dict per data source "
            "({query: FHIR Bundle dict} for fhir, {object key: bytes} for s3). This test split "
            "is shaped differently, so an analysis that passes here may fail on a node:"
        ]
        if not is_list:
            advice.append("  * give each split as a list;")
        if not has_sources:
            advice.append("  * put at least one data source in each list;")
        advice.append("  * make each data source a dict of datasets, as described above.")
        echo("\n".join(advice))

    @staticmethod
    def write_result(
        result: Any,
        output_type: OutputType | list[OutputType],
        result_filepath: PathArg | list[PathArg] | None = None,
        multiple_results: bool = False,
        *,
        echo: Callable[[str], None] = print,
    ) -> None:
        """Print the final result(s), or write them as FLAME stores them: 'str' as text,
        'bytes' as they are, 'pickle' as ``pickle.dumps`` (read back with ``pickle.load``)."""
        several = multiple_results and isinstance(result, list | tuple)
        if multiple_results and not several:
            echo(
                f"Warning: multiple_results=True, but the result is a {type(result).__name__}, "
                "not a list or tuple: it is written as one result."
            )
        items = list(result) if several else [result]
        if isinstance(result_filepath, list) and several and len(result_filepath) != len(items):
            echo(
                f"Warning: {len(result_filepath)} result paths for {len(items)} results: "
                "multiple_results is ignored."
            )
            several, items = False, [result]
        if result_filepath is None:
            for i, item in enumerate(items):
                echo(f"Final result{f'_{i + 1}' if several else ''}: {item}")
            return
        if isinstance(result_filepath, list):
            paths = [Path(p) for p in result_filepath]
        elif several:
            paths = [Path(numbered(os.fspath(result_filepath), i)) for i in range(len(items))]
        else:
            paths = [Path(result_filepath)]
        for i, (path, item) in enumerate(zip(paths, items, strict=False)):
            kinds = output_type if isinstance(output_type, list) else [output_type] * len(items)
            kind = kinds[i] if len(kinds) == len(items) else output_type
            if kind == "str":
                path.write_text(str(item), encoding="utf-8")
            elif kind == "pickle":
                path.write_bytes(pickle.dumps(item))
            else:
                path.write_bytes(bytes(item))
            echo(f"Final result{f'_{i + 1}' if several else ''} written to {path}")

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
        level = "" if entry.log_type == "info" else f" {entry.log_type.upper()}"
        self._print(f"[{role} {entry.node_id}{level}] {entry.message}")

    def _print(self, line: str) -> None:
        if not self.quiet:
            with self._print_lock:
                sys.stdout.write(line + "\n")


def _paths(given: PathArg | Sequence[PathArg] | None) -> PathArg | list[PathArg] | None:
    if given is None or isinstance(given, str | os.PathLike):
        return given
    return list(given)


def _check_roles(node_roles: Any, splits: int) -> None:
    """FLAME's node_roles: one role per data split; the tester adds the aggregator itself."""
    if node_roles is None:
        return
    if not isinstance(node_roles, list | tuple) or len(node_roles) != splits:
        raise StarError(
            f"node_roles must list one role per data split ({splits}), got {node_roles!r}.",
            hint="Leave node_roles out, or pass e.g. ['default'] * len(data_splits).",
        )
    if any(role != "default" for role in node_roles):
        raise StarError(
            f"Every data split is an analyzer node (role 'default'), got {list(node_roles)}.",
            hint="The tester adds the one aggregator after the splits; a star analysis has "
            "no second aggregator.",
        )
