"""flame_lab.star stays importable in a plain interpreter: no Jupyter, tornado or network."""

from __future__ import annotations

import json
import subprocess
import sys


def test_importing_flame_lab_star_pulls_in_no_jupyter_tornado_or_network_modules():
    code = (
        "import json, sys, flame_lab.star; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    forbidden = {"tornado", "IPython", "ipykernel", "ipywidgets", "jupyter_server", "httpx",
                 "requests", "flame_hub", "urllib3", "socket", "http"}  # fmt: skip
    assert loaded & forbidden == set()
