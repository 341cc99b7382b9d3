"""Fixtures for the notebook face: an in-memory IPython shell, fake analyses, a sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from flame_lab import config
from flame_lab.federation import AnalysisStatus, LogLine, NodeState, overall_status
from flame_lab.kernel.magics import load_ipython_extension
from flame_lab.privacy import NodePolicy, dump_policy
from flame_lab.sandbox import daemon
from flame_lab.security.keys import Identity, save_identity

PASSPHRASE = "correct horse battery staple, kernel edition"
MANUAL_NODE = "uk-bonn"  # in the test sandbox its admin decides by hand (`%flame approve`)

HELPERS_CELL = """\
def pooled_mean(parts):
    return sum(p["sum"] for p in parts) / sum(p["n"] for p in parts)
"""

MEAN_AGE_CELL = """\
import csv
import io

from flame.star import StarAggregator, StarAnalyzer, StarModel
from helpers import pooled_mean


class AgeSum(StarAnalyzer):
    def __init__(self, flame):
        super().__init__(flame)

    def analysis_method(self, data, aggregator_results):
        rows = list(csv.DictReader(io.StringIO(data[0]["patients.csv"].decode())))
        ages = [float(row["age"]) for row in rows]
        return {"sum": sum(ages), "n": len(ages)}


class MeanAge(StarAggregator):
    def __init__(self, flame):
        super().__init__(flame)

    def aggregation_method(self, analysis_results):
        return round(pooled_mean(analysis_results), 6)

    def has_converged(self, result, last_result):
        return True


StarModel(
    analyzer=AgeSum,
    aggregator=MeanAge,
    data_type="s3",
    query=["patients.csv"],
    simple_analysis=True,
    output_type="pickle",
)
"""


@pytest.fixture(scope="session")
def _ipython_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ipython")
    os.environ["IPYTHONDIR"] = str(folder)
    return folder


@pytest.fixture
def shell(_ipython_dir: Path) -> Iterator[InteractiveShell]:
    """IPython's InteractiveShell (in-memory history) with flame_lab freshly loaded."""
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    sh = InteractiveShell.instance(config=config)
    for name in [n for n in sh.user_ns if n not in sh.user_ns_hidden and not n.startswith("__")]:
        del sh.user_ns[name]  # cheaper than sh.reset(), which collects garbage every time
    sh.set_custom_exc((), None)
    with capture_output():
        load_ipython_extension(sh)
    yield sh
    session = magics_of(sh).session
    for monitor in session.monitors:
        monitor.close()
    if session.finder is not None:  # leave no draft module importable for other tests
        session.finder.remove()
        session.finder.forget()
    sh.set_custom_exc((), None)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """FLAME_LAB_HOME of a researcher with an identity and a running 4-node sandbox.

    uk-aachen and uk-koeln approve verified code by themselves; uk-bonn waits for its admin.
    """
    home = tmp_path_factory.mktemp("kernel-sandbox") / "flame-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLAME_LAB_HOME", str(home))
        for var in ("FLAME_LAB_SANDBOX_DIR", "FLAME_LAB_KEYS_DIR", "FLAME_LAB_IDENTITY"):
            mp.delenv(var, raising=False)
        save_identity(config.identity_file(), Identity.generate(), PASSPHRASE)
        sandbox_dir = config.sandbox_dir()
        daemon.initialise(sandbox_dir, nodes=4)
        manual = NodePolicy(approval="manual")
        dump_policy(manual, sandbox_dir / "nodes" / MANUAL_NODE / "policy.toml")
        daemon.up(sandbox_dir)
    try:
        yield home
    finally:
        daemon.down(sandbox_dir)


def magics_of(sh: InteractiveShell) -> Any:
    return sh.magics_manager.registry["FlameMagics"]


@dataclass
class Ran:
    """What one cell did: its result, printed text and rich outputs."""

    result: Any
    stdout: str
    outputs: list[Any] = field(default_factory=list)

    @property
    def error(self) -> BaseException | None:
        return self.result.error_before_exec or self.result.error_in_exec


def run(sh: InteractiveShell, code: str) -> Ran:
    """Run one cell as a notebook would, capturing what it printed and displayed."""
    with capture_output(stderr=True) as cap:
        result = sh.run_cell(code, store_history=True)
    return Ran(result, cap.stdout + cap.stderr, list(cap.outputs))


# -- fake analyses for the monitor -------------------------------------------------------------
def node(name: str, approval=None, execution=None, progress=0, comment=None, kind="default"):
    return NodeState(f"id-{name}", name, kind, approval, execution, progress, comment)


def status(
    nodes: tuple[NodeState, ...], name="mean age", analysis_id="an-1", cancelled=False
) -> AnalysisStatus:
    overall, failure = overall_status(nodes, None, cancelled)
    progress = round(sum(n.progress for n in nodes) / len(nodes))
    return AnalysisStatus(
        analysis_id,
        name,
        overall,
        100 if overall == "executed" else progress,
        nodes,
        failure=failure,
        result_available=overall == "executed",
    )


def log(node_name: str, message: str, level="info", time="2026-11-28T01:00:00+00:00") -> LogLine:
    return LogLine(time, f"id-{node_name}", node_name, level, message)


@dataclass
class FakeRecord:
    analysis_id: str = "an-1"
    submitted_at: str = "2026-11-28T01:00:00+00:00"


@dataclass
class FakeFederation:
    name: str = "sandbox"


class FakeAnalysis:
    """An analysis whose hub answers follow a script: one (status, logs) pair per poll."""

    def __init__(self, script: list[tuple[AnalysisStatus, list[LogLine]]], result: Any = None):
        self.script = list(script)
        self.polls = 0
        self.federation = FakeFederation()
        self.record = FakeRecord()
        self.id = self.record.analysis_id
        self._result = result
        self.errors: list[BaseException] = []

    def status(self, *, advance: bool = True) -> AnalysisStatus:
        """The next scripted state (the last one repeats)."""
        if self.errors:
            raise self.errors.pop(0)
        self.current = self.script[min(self.polls, len(self.script) - 1)]
        self.polls += 1
        return self.current[0]

    def logs(self, node=None, level=None, **_options) -> list[LogLine]:
        """The log lines that go with the latest state."""
        return self.current[1] if self.polls else []

    def result(self) -> Any:
        return self._result
