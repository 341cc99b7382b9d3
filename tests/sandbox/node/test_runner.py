"""An analysis runs confined, reaches the node only through its runtime, and fails clearly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from flame_lab.errors import SandboxError
from flame_lab.privacy import NodePolicy, ResourceLimits
from flame_lab.sandbox.node.datasets import NodeData
from flame_lab.sandbox.node.runner import (
    RunOutcome,
    RunSpec,
    clean_environment,
    run_analysis,
    user_traceback,
)
from flame_lab.sandbox.node.service import NodeFacts, NodeService, Switchboard, decode_body
from flame_lab.sandbox.node.synthetic import generate
from flame_lab.star.compat import COMPAT_DIR

IS_ROOT = os.geteuid() == 0
# allow_unconfined: on a machine without bubblewrap or root these tests run in the logged
# fallback (its refusal otherwise is tested below); with bubblewrap they run confined
FAST = ResourceLimits(cpu_seconds=20, memory_mib=1024, wall_seconds=30, allow_unconfined=True)


class Run:
    """One data node ("hospital") with an aggregator mailbox, running one analysis file."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.code = tmp_path / "code"
        self.code.mkdir()
        self.switchboard = Switchboard()
        self.aggregator = self.switchboard.transport("agg")
        self.logs: list[tuple[str, str]] = []
        self.progress: list[int] = []
        self.output: list[tuple[str, str]] = []
        facts = NodeFacts("hospital", "default", ("agg",), "agg", "analysis-1", "project-1")
        self.site = generate("hospital", n_patients=30)
        self.service = NodeService(
            facts,
            NodeData.from_site(self.site),
            NodePolicy(),
            self.switchboard.transport("hospital"),
            on_log=lambda level, text: self.logs.append((level, text)),
            on_progress=self.progress.append,
        )

    def __call__(self, code: str, limits: ResourceLimits = FAST, **files: str) -> RunOutcome:
        (self.code / "entry.py").write_text(textwrap.dedent(code))
        for name, text in files.items():
            (self.code / f"{name}.py").write_text(textwrap.dedent(text))
        spec = RunSpec(self.code, "entry.py", self.tmp / "work", limits)
        return run_analysis(spec, self.service, lambda s, line: self.output.append((s, line)))

    def printed(self) -> list[str]:
        return [line for stream, line in self.output if stream == "stdout"]


@pytest.fixture
def run(tmp_path):
    return Run(tmp_path)


def test_an_analysis_reaches_data_logs_progress_and_messages_through_the_runtime(run):
    outcome = run(
        """
        import csv, io
        from flame.star import StarAnalyzer, StarAggregator, StarModel

        class Count(StarAnalyzer):
            def __init__(self, flame):
                super().__init__(flame)

            def analysis_method(self, data, aggregator_results):
                self.flame.flame_log("counting rows", log_type="info")
                self.flame.set_progress(50)
                table = data[0]["patients.csv"].decode()
                open("scratch.txt", "w").write("the work folder is writable")
                print("analysed on", self.flame.get_id())
                return {"rows": len(list(csv.DictReader(io.StringIO(table))))}

        class Unused(StarAggregator):
            def aggregation_method(self, analysis_results):
                return None

            def has_converged(self, result, last_result):
                return True

        StarModel(Count, Unused, "s3", query=["patients.csv"])
        """
    )
    assert outcome.ok, outcome.failure
    assert outcome.returncode == 0 and not outcome.timed_out and outcome.signal is None
    assert ("info", "counting rows") in run.logs
    assert run.progress == [50]
    assert "analysed on hospital" in run.printed()
    sent = run.aggregator.receive(timeout=5)
    assert (sent.sender, sent.category) == ("hospital", "intermediate_data")
    assert decode_body(sent.body) == {"rows": 30}
    assert outcome.confinement["cpu_seconds"] == FAST.cpu_seconds
    assert outcome.confinement["user_dropped"] is IS_ROOT
    assert not any(line.startswith("flame-lab-confinement:") for _, line in run.output)


def test_an_error_is_reported_as_the_analysts_own_traceback_without_flame_lab_frames(run):
    outcome = run(
        """
        import helper
        helper.check(-1)
        """,
        helper="""
        def check(value):
            if value < 0:
                raise ValueError(f"negative value {value}")
        """,
    )
    assert outcome.returncode == 1 and not outcome.ok
    failure = outcome.failure
    assert f'File "{run.code / "entry.py"}", line 3' in failure
    assert f'File "{run.code / "helper.py"}", line 4, in check' in failure
    assert failure.rstrip().endswith("ValueError: negative value -1")
    assert "flame_lab/" not in failure and "runpy" not in failure
    assert any("flame_lab/" in line for s, line in run.output if s == "stderr")


def test_a_cpu_hog_is_stopped_and_reported_as_hitting_the_cpu_limit(run):
    outcome = run("while True:\n    pass\n", replace(FAST, cpu_seconds=1))
    assert outcome.signal == "SIGXCPU" and not outcome.timed_out
    assert "CPU time" in outcome.failure and "1 s" in outcome.failure


def test_a_sleeper_is_killed_at_the_wall_clock_limit(run):
    outcome = run("import time\ntime.sleep(60)\n", replace(FAST, wall_seconds=1))
    assert outcome.timed_out and outcome.signal == "SIGKILL"
    assert "wall time" in outcome.failure and "1 s" in outcome.failure


def test_a_memory_hog_is_reported_as_running_out_of_memory(run):
    outcome = run("hog = bytearray(2 * 1024 ** 3)\n", replace(FAST, memory_mib=512))
    assert outcome.memory_error and outcome.returncode != 0
    assert "out of memory" in outcome.failure and "512 MiB" in outcome.failure


def test_the_analysis_sees_none_of_the_agents_environment(run, monkeypatch):
    monkeypatch.setenv("FLAME_LAB_NODE_TOKEN", "FAKE-secret-value-1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "FAKE-aws-secret")
    outcome = run("import json, os\nprint(json.dumps(dict(os.environ)))\n")
    assert outcome.ok, outcome.failure
    env = json.loads(run.printed()[0])
    assert "FAKE" not in json.dumps(env)
    assert set(env) <= {
        "PATH",
        "HOME",
        "LANG",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "FLAME_LAB_RUNTIME",
        "PYTHONPATH",
        "PWD",  # bubblewrap's, the work folder
    }
    assert env["HOME"] == str((run.tmp / "work").resolve())
    assert env["FLAME_LAB_RUNTIME"].startswith("fd:")


@pytest.fixture
def visible_folder():
    """A folder every user may enter (pytest's own temporary folders are private)."""
    folder = Path(tempfile.mkdtemp(prefix="flame-lab-node-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_the_analysis_cannot_read_the_node_key(run, visible_folder):
    key = visible_folder / "identity.key"
    key.write_text("NODE-PRIVATE-KEY")
    key.chmod(0o600)
    outcome = run(f"print(open({str(key)!r}).read())\n")
    if IS_ROOT:  # under bubblewrap not even visible in the run's root, let alone readable
        assert outcome.confinement["user_dropped"] is True
        bwrap = outcome.confinement["engine"] == "bubblewrap"  # else: root's fallback
        assert ("FileNotFoundError" if bwrap else "PermissionError") in outcome.failure
        assert "NODE-PRIVATE-KEY" not in "\n".join(line for _, line in run.output)
    else:  # without root the wrapper cannot drop the user, and says so
        assert outcome.confinement["user_dropped"] is False
        assert "not running as root" in outcome.confinement["notes"]


def test_files_beside_the_run_in_a_private_folder_are_not_even_visible(run, tmp_path):
    beside = tmp_path / "node-state.json"
    beside.write_text("{}")
    beside.chmod(0o644)
    outcome = run(f"import os\nprint(os.path.exists({str(beside)!r}))\n")
    assert outcome.ok, outcome.failure
    assert run.printed() == (["False"] if IS_ROOT else ["True"])


def test_a_missing_entrypoint_is_refused_before_anything_starts(run):
    spec = RunSpec(run.code, "nope.py", run.tmp / "work", FAST)
    with pytest.raises(SandboxError, match=r"nope\.py"):
        run_analysis(spec, run.service, lambda *_: None)


def test_the_traceback_filter_keeps_syntax_errors_and_the_last_chained_exception(tmp_path):
    code = str(tmp_path / "code")
    lines = [
        "Traceback (most recent call last):",
        f'  File "{code}/entry.py", line 2, in <module>',
        "    first()",
        "KeyError: 'a'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "/opt/flame_lab/sandbox/node/bootstrap.py", line 40, in main',
        "    runpy.run_path(entry)",
        f'  File "{code}/entry.py", line 3',
        "    x = = 1",
        "        ^",
        "SyntaxError: invalid syntax",
    ]
    text, last = user_traceback(lines, tmp_path / "code")
    assert text.splitlines() == [
        "Traceback (most recent call last):",
        f'  File "{code}/entry.py", line 3',
        "    x = = 1",
        "        ^",
        "SyntaxError: invalid syntax",
    ]
    assert last == "SyntaxError: invalid syntax"
    assert user_traceback(["just output"], tmp_path) == ("", "")


def test_flame_lab_s_own_flame_package_is_put_on_the_path_only_without_a_real_one(
    tmp_path, monkeypatch
):
    monkeypatch.delitem(sys.modules, "flame", raising=False)
    env = clean_environment(tmp_path, 3)
    assert env["PYTHONPATH"] == str(COMPAT_DIR)
    real = tmp_path / "site"
    (real / "flame").mkdir(parents=True)
    (real / "flame" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(real))
    assert "PYTHONPATH" not in clean_environment(tmp_path, 3)


def test_the_bootstrap_without_an_entrypoint_says_how_to_call_it():
    proc = subprocess.run(
        [sys.executable, "-m", "flame_lab.sandbox.node.bootstrap"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_without_confinement_a_node_refuses_unless_its_policy_allows_it(run, monkeypatch):
    monkeypatch.setenv("FLAME_LAB_BWRAP", str(run.tmp / "no-bwrap"))
    strict = ResourceLimits(cpu_seconds=20, wall_seconds=30)  # allow_unconfined = false
    with pytest.raises(SandboxError, match="refuses to run the analysis without confinement"):
        run("print('ran')\n", strict)
    assert run.output == []  # nothing started


def test_an_allowed_unconfined_run_says_which_protections_are_off(run, monkeypatch):
    monkeypatch.setenv("FLAME_LAB_BWRAP", str(run.tmp / "no-bwrap"))
    allowed = ResourceLimits(cpu_seconds=20, wall_seconds=30, allow_unconfined=True)
    outcome = run("print('ran')\n", allowed)
    assert outcome.ok, outcome.failure
    assert outcome.confinement["engine"] == "none"
    assert outcome.confinement["off"][0].startswith("bubblewrap (")
    notes = [line for stream, line in run.output if stream == "stderr"]
    assert any("not confined by bubblewrap" in line for line in notes)
    assert any("protections OFF" in line and "PID namespace" in line for line in notes)


def test_code_written_under_a_private_umask_is_still_readable_by_the_run(run):
    (run.code / "helper.py").write_text("VALUE = 42\n")
    (run.code / "helper.py").chmod(0o600)
    outcome = run("import helper\nprint(helper.VALUE)\n")
    assert outcome.ok, outcome.failure
    assert run.printed() == ["42"]
