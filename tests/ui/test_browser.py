"""The JupyterLab extension in a real JupyterLab and a real browser (Playwright + Chromium).

ui-tests/run.sh starts JupyterLab with a temporary FLAME_LAB_HOME and runs two suites: the
panel without the server API (a clear "server extension missing" state, light and dark), and
the whole submission of notebooks/01-getting-started.ipynb against the sandbox, with every node
reaching "executed", and a new user's path (run notebook 01, the monitor's green end state and
headers, the data dictionary in the panel, the result as a table), with screenshots in
ci-artifacts/ (README's pictures in docs/images/ are these); and a saved notebook whose monitor
was running and whose Decrypt button was never clicked, after a kernel restart and a reopen:
static snapshots, never "model not found".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.mark.parametrize("suite", ["no-api", "sandbox", "widgets"])
def test_the_lab_extension_in_a_real_browser(suite):
    assert Path(CHROMIUM).exists(), (
        "the browser tests need Debian's chromium: apt-get install chromium"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAME_LAB_")}
    env["JUPYTER"] = str(Path(sys.executable).parent / "jupyter")
    proc = subprocess.run(
        ["bash", str(ROOT / "ui-tests" / "run.sh"), suite],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    if suite == "sandbox":
        for picture in ("flame-panel-executed", "monitor", "flame-data", "flame-panel"):
            assert (ROOT / "ci-artifacts" / f"{picture}.png").exists(), picture
    if suite == "widgets":
        assert (ROOT / "ci-artifacts" / "monitor-after-restart.png").exists()
