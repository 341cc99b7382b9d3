"""The Lab extension's own unit tests (jest: the panel's model, the %%flame cell collection)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

EXTENSION = Path(__file__).resolve().parents[2] / "extension"


def test_the_extensions_jest_suite_passes():
    npm = shutil.which("npm")
    assert npm, "node >= 20 and npm are needed to build and test the JupyterLab extension"
    if not (EXTENSION / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=EXTENSION, check=True)
    proc = subprocess.run(
        [npm, "test", "--", "--ci"], cwd=EXTENSION, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "failed" not in proc.stderr.split("Tests:")[-1].split("\n")[0]
