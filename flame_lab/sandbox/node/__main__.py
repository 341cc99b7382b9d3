"""`python -m flame_lab.sandbox.node --home H --node NAME --url URL`: one node agent process."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from flame_lab.sandbox.node import slots
from flame_lab.sandbox.node.agent import main_loop
from flame_lab.sandbox.node.layout import NodeFolder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="flame-lab-node")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--node", required=True)
    parser.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.node} %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    folder = NodeFolder.of(args.home, args.node)
    if os.geteuid() == 0:
        reaped = slots.reap_unheld()
        if reaped:
            logging.warning("killed %d processes a killed agent's runs left behind", reaped)
    pid_tmp = folder.pid.with_suffix(".tmp")
    pid_tmp.write_text(str(os.getpid()))
    os.replace(pid_tmp, folder.pid)  # never seen empty by `sandbox up`, which polls it
    try:
        main_loop(args.home, args.node, args.url, stop)
    finally:
        if folder.pid.exists() and folder.pid.read_text().strip() == str(os.getpid()):
            folder.pid.unlink()


if __name__ == "__main__":
    main()
