"""The first code of an analysis process: connect flame.star to the node, then run the entry.

A sandbox node runs ``python -u -m flame_lab.sandbox.node.bootstrap <code_dir>/entry.py``
rather than the bare ``python -u entry.py`` of a FLAME master image, because before the
researcher's code imports ``flame.star`` three things must hold in this process:

- the ``fd`` runtime connector is registered, so that ``FLAME_LAB_RUNTIME=fd:<n>`` (the socket
  the agent passed down) turns into an :class:`~.runtime_client.AgentRuntime`: the analysis
  reaches data, messages, logs and results only through it;
- ``import flame.star`` works even where PrivateAIM's SDK is not installed
  (:func:`flame_lab.star.ensure_importable`);
- the entry runs as ``__main__`` with its folder first on ``sys.path`` (``runpy.run_path``),
  exactly as ``python entry.py`` would, so sibling modules import and tracebacks name the
  researcher's own file and lines.
"""

from __future__ import annotations

import os
import runpy
import sys

from flame_lab.sandbox.node.runtime_client import connect_fd
from flame_lab.star import ensure_importable, register_connector


def main(argv: list[str] | None = None) -> None:
    """Run the entrypoint named by ``argv[0]`` (further items become its ``sys.argv``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write("usage: python -m flame_lab.sandbox.node.bootstrap ENTRY.py [ARGS]\n")
        raise SystemExit(2)
    entry = os.path.abspath(args[0])
    register_connector("fd", connect_fd)
    ensure_importable()
    sys.argv = [entry, *args[1:]]
    folder = os.path.dirname(entry)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path[0] = folder  # what `python entry.py` puts there (`-m` put the cwd)
    else:
        sys.path.insert(0, folder)
    runpy.run_path(entry, run_name="__main__")


if __name__ == "__main__":
    main()
