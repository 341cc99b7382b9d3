"""`flame-lab`: the command-line face. Each verb group lives in its own module here and
registers itself; this file only parses, dispatches and turns errors into messages."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from flame_lab import __version__
from flame_lab.errors import FlameLabError

# Modules under flame_lab.cli that define ``register(subparsers)``.
GROUPS = ("keys", "sandbox", "node", "analyses", "data", "image", "lab")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flame-lab", description="A Jupyter workbench for federated analysis on FLAME."
    )
    parser.add_argument("--version", action="version", version=f"flame-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in GROUPS:
        importlib.import_module(f"flame_lab.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # only `flame-lab lab` passes options on (to JupyterLab)
        if not hasattr(args, "jupyter_args"):
            parser.error("unrecognized arguments: " + " ".join(extra))
        args.jupyter_args = [*extra, *args.jupyter_args]
    try:
        return int(args.func(args) or 0)
    except FlameLabError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
