"""After `pip install`, Jupyter itself lists flame_lab's server and Lab extensions as OK."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

JUPYTER = str(Path(sys.executable).parent / "jupyter")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _listing(*args: str) -> str:
    proc = subprocess.run([JUPYTER, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return ANSI.sub("", proc.stdout + proc.stderr)


def test_jupyter_lists_the_server_extension_enabled_and_ok():
    out = _listing("server", "extension", "list")
    assert re.search(r"flame_lab\s+enabled", out), out
    assert re.search(r"flame_lab 0\.1\.0\s+OK", out), out


def test_jupyter_lists_the_prebuilt_lab_extension_enabled_and_ok():
    out = _listing("labextension", "list")
    assert re.search(r"flame-lab v0\.1\.0\s+enabled\s+OK\s+\(python, flame-lab\)", out), out
