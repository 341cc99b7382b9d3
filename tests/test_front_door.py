"""README's quick start is the project's front door: CI runs its test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S)]


def test_the_quick_start_is_exactly_two_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_the_main_job_starts_jupyterlab_with_the_sandbox():
    main_job, _ = _quick_start_commands()
    assert main_job.endswith("flame-lab lab")


def test_ci_runs_the_readmes_test_command_verbatim():
    _, tests = _quick_start_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci
    assert tests.endswith("python -m pytest")
