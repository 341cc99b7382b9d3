"""PrivateAIM's own flame-hub-client test suite (vendored unchanged, see
upstream_flame_hub/NOTICE.md) run against a sandbox hub, with nothing set but the variables the
suite documents: its URLs, the admin login and PYTEST_USE_TESTCONTAINERS=0."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flame_lab.sandbox.hub.app import HubThread
from tests.sandbox.hub.conftest import provisioned_home

HERE = Path(__file__).parent / "upstream_flame_hub"
# test id -> why the sandbox fails it on purpose (empty: every upstream test must pass or xfail)
EXPECTED_FAILURES: dict[str, str] = {}


def _blob_id(path: Path) -> str:
    return subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_vendored_suite_is_unchanged() -> None:
    rows = re.findall(
        r"^\| (suite/\S+) \| ([0-9a-f]{40}) \|$", (HERE / "NOTICE.md").read_text(), re.M
    )
    assert len(rows) == 9
    for name, blob in rows:
        assert _blob_id(HERE / name) == blob, f"{name} differs from upstream"


@pytest.fixture(scope="module")
def upstream_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    # the suite's conftest imports testcontainers (a test extra); it starts no container here
    __import__("testcontainers.core.container")
    work = tmp_path_factory.mktemp("upstream")
    shutil.copytree(HERE / "suite", work, dirs_exist_ok=True)
    # the marker upstream registers in its pyproject.toml (not vendored: it also sets coverage)
    (work / "pytest.ini").write_text("[pytest]\nmarkers =\n    integration: integration test\n")
    home = tmp_path_factory.mktemp("hub")
    p = provisioned_home(home)
    # as upstream's conftest starts the Hub: SKIP_ANALYSIS_APPROVAL=true
    with HubThread(home, skip_analysis_approval=True) as server:
        env = {
            **os.environ,
            "PYTEST_USE_TESTCONTAINERS": "0",
            "PYTEST_CORE_BASE_URL": f"{server.url}/core/",
            "PYTEST_AUTH_BASE_URL": f"{server.url}/auth/",
            "PYTEST_STORAGE_BASE_URL": f"{server.url}/storage/",
            "PYTEST_ADMIN_USERNAME": p.admin_username,
            "PYTEST_ADMIN_PASSWORD": p.admin_password,
        }
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rfEX", "-p", "no:cacheprovider", "tests"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )


def _counts(output: str) -> dict[str, int]:
    summary = output.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}


def test_privateaims_client_suite_passes_against_the_sandbox(upstream_run) -> None:
    output = upstream_run.stdout + upstream_run.stderr
    counts = _counts(upstream_run.stdout)
    failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.M))
    unexpected = failed - set(EXPECTED_FAILURES)
    assert not unexpected, output[-6000:]
    assert counts.get("passed", 0) >= 100, output[-3000:]
    print(f"flame-hub-client suite against the sandbox: {counts}")
