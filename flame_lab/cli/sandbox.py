"""`flame-lab sandbox up|status|down|reset`: the local FLAME federation's lifecycle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flame_lab.sandbox import daemon


def _up(args: argparse.Namespace) -> int:
    if args.foreground:
        daemon.foreground(
            args.home, nodes=args.nodes, port=args.port, on_ready=lambda url: print(url, flush=True)
        )
        return 0
    print(daemon.up(args.home, nodes=args.nodes, port=args.port).url)
    return 0


def _status(args: argparse.Namespace) -> int:
    info = daemon.status(args.home)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0 if info["running"] else 3
    if not info["initialised"]:
        print(f"no sandbox in {info['home']} (start one with `flame-lab sandbox up`)")
        return 3
    state = f"running at {info['url']} (pid {info['pid']})" if info["running"] else "stopped"
    print(f"sandbox {info['home']}: {state}")
    print(f"  researcher: {info['username']} (password in {info['credentialsFile']})")
    for node in info["nodes"]:
        print(f"  node {node['name']:<16} {node['type']:<10} {node['id']}")
    return 0 if info["running"] else 3


def _down(args: argparse.Namespace) -> int:
    print("stopped" if daemon.down(args.home) else "not running")
    return 0


def _reset(args: argparse.Namespace) -> int:
    home = daemon.home_dir(args.home)
    if not args.yes:
        answer = input(f"Delete every analysis, file and key of the sandbox in {home}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept")
            return 1
    daemon.reset(home)
    print(f"reset {home}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sandbox", help="run a local FLAME Hub with hospital nodes")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    def home_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--home", type=Path, default=None, help="sandbox folder (default: XDG)")

    up = verbs.add_parser("up", help="start the sandbox (or reuse the running one)")
    up.add_argument("--nodes", type=int, default=3, help="nodes incl. the aggregator (3)")
    up.add_argument("--port", type=int, default=0, help="port (0 = any free port)")
    up.add_argument("--foreground", action="store_true", help="do not detach")
    home_option(up)
    up.set_defaults(func=_up)

    st = verbs.add_parser("status", help="URLs, the researcher's login and the nodes")
    st.add_argument("--json", action="store_true", help="machine-readable, with credentials")
    home_option(st)
    st.set_defaults(func=_status)

    dn = verbs.add_parser("down", help="stop the sandbox hub (data is kept)")
    home_option(dn)
    dn.set_defaults(func=_down)

    rs = verbs.add_parser("reset", help="stop and delete all sandbox data")
    rs.add_argument("--yes", action="store_true", help="do not ask")
    home_option(rs)
    rs.set_defaults(func=_reset)
