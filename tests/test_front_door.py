"""README's quick start is the project's front door: CI runs its test command verbatim."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


def _working_tree_copy(target: Path) -> None:
    """The repository as a fresh clone would have it (tracked and new files, nothing ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_the_main_job_command_works_literally_in_a_fresh_virtual_environment(tmp_path):
    """Command 1 of the quick start, as typed, in a copy of the repository: it installs
    flame_lab, creates the researcher's key and opens JupyterLab on a running sandbox."""
    main_job, _ = _quick_start_commands()
    repo, home = tmp_path / "repo", tmp_path / "home"
    _working_tree_copy(repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLAME_LAB_", "VIRTUAL_ENV"))}
    env.update(FLAME_LAB_HOME=str(home), FLAME_LAB_PASSPHRASE="front door", BROWSER="true")
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix)
    )
    proc = subprocess.Popen(
        ["bash", "-c", main_job],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 1200
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline().decode(errors="replace")
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            found = re.search(r"(http://(?:localhost|127\.0\.0\.1):\d+)/lab\?token=(\w+)", line)
            if found:
                url = found.groups()
        assert url, "JupyterLab never announced itself:\n" + "".join(seen[-40:])
        base, token = url
        answer = None
        while answer is None and time.monotonic() < deadline:
            request = urllib.request.Request(  # noqa: S310 - loopback URL from Jupyter
                f"{base}/flame-lab/api/status", headers={"Authorization": f"token {token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    answer = json.loads(response.read())
            except urllib.error.HTTPError as exc:
                raise AssertionError(f"flame_lab's API answered {exc.code}") from None
            except OSError:
                time.sleep(0.5)
        assert answer["reachable"] is True and answer["federation"]["kind"] == "sandbox"
        assert answer["keyId"], "the main job created the researcher's identity"
        assert not any("No such file" in line for line in seen)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        flame_lab = repo / ".venv" / "bin" / "flame-lab"
        if flame_lab.exists():
            subprocess.run([str(flame_lab), "sandbox", "down"], env=env, timeout=120)
