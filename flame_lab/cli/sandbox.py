"""`flame-lab sandbox up|status|down|reset`: the local FLAME federation's lifecycle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flame_lab.errors import SandboxError
from flame_lab.sandbox import daemon


def _up(args: argparse.Namespace) -> int:
    if args.foreground:

        def ready(url: str) -> None:
            if args.profile:
                daemon.set_profile(args.home, args.profile)
            _switches(args)
            print(url, flush=True)

        daemon.foreground(args.home, nodes=args.nodes, port=args.port, on_ready=ready)
        return 0
    node_data = {}
    for item in args.node_data:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SandboxError(
                f"--node-data wants NAME=DIR, not {item!r}", hint="e.g. --node-data uk-aachen=./csv"
            )
        node_data[name] = Path(folder).expanduser().resolve()
    running = daemon.up(args.home, nodes=args.nodes, port=args.port, node_data=node_data)
    if args.profile:
        daemon.set_profile(args.home, args.profile)
    _switches(args)
    print(running.url)
    return 0


def _switches(args: argparse.Namespace) -> None:
    if args.image_environments:
        daemon.set_switch(args.home, "image_environments", True)
    if args.no_node_sealing:
        daemon.set_switch(args.home, "node_sealing", False)


def _user_add(args: argparse.Namespace) -> int:
    password = daemon.add_user(args.home, args.name)
    print(f"researcher {args.name} added; password (shown once): {password}")
    return 0


def _oauth_client_add(args: argparse.Namespace) -> int:
    client = daemon.add_oauth_client(args.home, args.name, args.redirect_uri)
    print(f"client id:     {client.client_id}")
    print(f"client secret: {client.client_secret}  (shown once)")
    print(f"redirect URI:  {client.redirect_uri}")
    return 0


def _decide(args: argparse.Namespace) -> int:
    from flame_lab.sandbox.admin import decide

    approve = args.verb == "approve"
    comment = decide(args.analysis, args.node, approve, args.reason, args.home)
    print(f"{args.node}: {'approved' if approve else 'rejected'} ({comment})")
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
    admin = info["admin"]
    if admin["username"]:
        print(f"  admin:      {admin['username']} (password in {admin['credentialsFile']})")
    detached = 0
    for node in info["nodes"]:
        if node["agentAttached"]:
            agent = f"agent pid {node['agentPid']}"
        elif node["agentRunning"]:
            agent = f"agent DETACHED (talks to {node['agentUrl']})"
        else:
            agent = "agent not running"
        detached += info["running"] and not node["agentAttached"]
        print(f"  node {node['name']:<16} {node['type']:<10} {node['id']}  {agent}")
    if detached:
        print(f"  {detached} agent(s) not serving this hub: run `flame-lab sandbox up` to recover")
    return 0 if info["running"] and not detached else 3


def _down(args: argparse.Namespace) -> int:
    print("stopped" if daemon.down(args.home) else "not running")
    return 0


def _gc(args: argparse.Namespace) -> int:
    done = daemon.gc(args.home)
    print(
        f"reclaimed {done['freed']:,} bytes: {done['blobs']} stored file(s), {done['builds']} "
        f"build(s), {done['temporary']} temporary file(s), {done['runs']} node run folder(s)"
    )
    return 0


def _reset(args: argparse.Namespace) -> int:
    home = daemon.home_dir(args.home)
    if not args.yes:
        try:
            answer = input(f"Delete every analysis, file and key of the sandbox in {home}? [y/N] ")
        except EOFError:
            print("\nkept (no terminal to ask on: pass --yes to reset without asking)")
            return 1
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

    up = verbs.add_parser(
        "up", help="start the sandbox, or recover it after a crash (or reuse the running one)"
    )
    up.add_argument("--nodes", type=int, default=3, help="nodes incl. the aggregator (3)")
    up.add_argument(
        "--port", type=int, default=0, help="port (0 = the port used last, else any free port)"
    )
    up.add_argument("--foreground", action="store_true", help="do not detach")
    up.add_argument(
        "--profile",
        choices=("flame", "strict"),
        default=None,
        help="every node's release profile: flame (as a real FLAME node) or strict",
    )
    up.add_argument(
        "--image-environments",
        action="store_true",
        help="run each analysis with only its master image's packages (a stand-in per image)",
    )
    up.add_argument(
        "--no-node-sealing",
        action="store_true",
        help="nodes store results as the analysis wrote them, as real FLAME nodes do",
    )
    up.add_argument(
        "--node-data",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="give node NAME your own CSV files / FHIR bundles from DIR (repeatable)",
    )
    home_option(up)
    up.set_defaults(func=_up)

    st = verbs.add_parser("status", help="URLs, the researcher's login and the nodes")
    st.add_argument("--json", action="store_true", help="machine-readable, with credentials")
    home_option(st)
    st.set_defaults(func=_status)

    dn = verbs.add_parser("down", help="stop the sandbox hub (data is kept)")
    home_option(dn)
    dn.set_defaults(func=_down)

    for verb in ("approve", "reject"):
        dc = verbs.add_parser(verb, help=f"{verb} an analysis as a node's admin")
        dc.add_argument("analysis", help="the analysis id")
        dc.add_argument("--node", required=True, help="the node whose admin you act as")
        dc.add_argument("--reason", default=None, help="comment shown to the researcher")
        home_option(dc)
        dc.set_defaults(func=_decide)

    user = verbs.add_parser("user", help="researcher accounts of the sandbox")
    user_verbs = user.add_subparsers(dest="user_verb", metavar="VERB", required=True)
    ua = user_verbs.add_parser("add", help="add a researcher account (prints its password)")
    ua.add_argument("name", help="the account's login name")
    home_option(ua)
    ua.set_defaults(func=_user_add)

    oc = verbs.add_parser("oauth-client", help="web applications that log researchers in")
    oc_verbs = oc.add_subparsers(dest="oauth_verb", metavar="VERB", required=True)
    oa = oc_verbs.add_parser("add", help="register e.g. a JupyterHub (prints id and secret)")
    oa.add_argument("name", help="the client's name, e.g. jupyterhub")
    oa.add_argument("--redirect-uri", required=True, help="e.g. https://hub/hub/oauth_callback")
    home_option(oa)
    oa.set_defaults(func=_oauth_client_add)

    gc = verbs.add_parser("gc", help="reclaim the disk that deleted analyses held")
    home_option(gc)
    gc.set_defaults(func=_gc)

    rs = verbs.add_parser("reset", help="stop and delete all sandbox data")
    rs.add_argument("--yes", action="store_true", help="do not ask")
    home_option(rs)
    rs.set_defaults(func=_reset)
