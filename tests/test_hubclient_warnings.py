"""Importing the hub client leaves the process's warning filters as they were.

PrivateAIM's flame_hub calls ``warnings.simplefilter("default", DeprecationWarning)`` when it
is imported, which made every process that talks to a hub (the Jupyter server of
`flame-lab lab`, kernels, the CLI) print other packages' DeprecationWarnings (issue 17).
"""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_importing_the_hub_client_does_not_turn_on_deprecation_warnings():
    code = (
        "import warnings\n"
        "before = list(warnings.filters)\n"
        "import flame_lab.hubclient\n"
        "assert warnings.filters == before, warnings.filters[:3]\n"
        "import traitlets\n"
        "traitlets.List(trait=traitlets.Unicode)  # deprecated twice over, as jupyter_lsp does\n"
    )
    ran = run(code)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""


def test_the_check_sees_flame_hubs_own_import_turn_them_on():
    ran = run(
        "import flame_hub, traitlets\ntraitlets.List(trait=traitlets.Unicode)\n"
    )  # without the guard: the very warnings `flame-lab lab` printed
    assert ran.returncode == 0 and "DeprecationWarning" in ran.stderr
