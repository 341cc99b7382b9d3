"""``python -m flame_lab.sandbox.hub --home DIR [--port P]``: the detached sandbox hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from flame_lab.sandbox.hub.app import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flame_lab.sandbox.hub")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.home, args.port)


if __name__ == "__main__":
    main()
