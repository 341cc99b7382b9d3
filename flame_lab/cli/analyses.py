"""`flame-lab submit|status|logs|result|cancel`: the researcher's workflow from a terminal."""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path
from typing import Any, TextIO

from flame_lab.draft import Draft
from flame_lab.errors import FlameLabError, PayloadError
from flame_lab.textsafe import shown


def _connect(args: argparse.Namespace, *, start: bool = False):
    """The active federation; a stopped sandbox is started only to submit (and says so)."""
    from flame_lab.federation import connect

    if args.hub:
        return connect(args.hub)
    if start:
        from flame_lab import config
        from flame_lab.sandbox import daemon

        if config.active_profile().is_sandbox and not daemon.status()["running"]:
            print("starting the sandbox federation (stop it with `flame-lab sandbox down`)")
    return connect(start=start)


def node_line(status: Any) -> list[str]:
    """One line per node: name, approval, execution, progress, and a reason if it failed."""
    lines = []
    for node in status.nodes:
        line = (
            f"  {shown(node.name, multiline=False):<16} {node.approval or 'pending':<9} "
            f"{node.execution or '-':<10} {node.progress:>3}%"
        )
        if node.comment and (node.execution == "failed" or node.approval == "rejected"):
            line += f"  {shown(node.comment, multiline=False)}"
        lines.append(line)
    lines += [f"  {shown(why, multiline=False)}" for why in getattr(status, "waiting", [])]
    verdict = getattr(status, "verdict_lines", None)
    lines += [f"  {shown(why, multiline=False)}" for why in (verdict() if verdict else [])]
    return lines


class Progress:
    """Redraws the node lines in place on a terminal; prints a new block per change elsewhere."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.drawn = 0

    def __call__(self, status: Any) -> None:
        title = f"{shown(status.name, multiline=False)} ({status.analysis_id}): {status.overall}"
        lines = [title, *node_line(status)]
        if self.tty and self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)


def log_time(value: Any) -> str:
    """A hub's log time (epoch digits or ISO text) as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    from flame_lab.rendering import parse_time

    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else shown(value, multiline=False)


def _submit(args: argparse.Namespace) -> int:
    draft = Draft.from_path(Path(args.path))
    for note in draft.overwritten_notes():
        print(f"note: {note}")
    nodes = args.nodes.split(",") if args.nodes else None
    fed = _connect(args, start=True)
    run = fed.submit(
        draft, nodes=nodes, name=args.name, master_image=args.image, sealed=args.sealed
    )
    print(f"submitted {run.id} to {fed.hub_url}")
    if args.wait:
        run.wait(timeout=args.timeout, on_change=Progress(sys.stdout))
        _print_result(run.result(), None)
    return 0


def _status(args: argparse.Namespace) -> int:
    fed = _connect(args)
    if args.id:
        status = fed.attach(args.id).status()
        if args.json:
            print(json.dumps(status.to_dict(), indent=2))
        else:
            Progress(sys.stdout)(status)
        return 0
    rows = []
    for run in fed.analyses():
        try:
            state = run.status()
            rows.append((run.record.submitted_at, run.id, state.overall, run.name))
        except FlameLabError as exc:
            rows.append((run.record.submitted_at, run.id, "unknown", exc.message))
    damaged = fed.store.damaged()
    if args.json:
        keys = ("submittedAt", "id", "status", "name")
        listed = [dict(zip(keys, row, strict=True)) for row in rows]
        listed += [
            {"submittedAt": None, "id": path.stem, "status": "damaged", "name": why}
            for path, why in damaged
        ]
        print(json.dumps(listed))
        return 0
    if not rows and not damaged:
        print(f"no analyses submitted to {fed.hub_url} from this account")
    for submitted, analysis_id, overall, name in rows:
        print(f"{submitted}  {analysis_id}  {overall:<10} {shown(name, multiline=False)}")
    for path, why in damaged:
        print(f"damaged record {shown(str(path), multiline=False)}: {why} (restore or move it)")
    return 0


def _logs(args: argparse.Namespace) -> int:
    run = _connect(args).attach(args.id)
    for line in run.logs(node=args.node, level=args.level, unlock=True):
        print(
            f"{log_time(line.time)}  {shown(line.node_name, multiline=False):<12} "
            f"{shown(line.level, multiline=False):<6} {shown(line.message)}"
        )
    return 0


def _print_result(value: Any, out: Path | None) -> None:
    from flame_lab.security import payload

    if out is None:
        print(shown(repr(value)))
        return
    if isinstance(value, bytes):
        data = value
    else:
        try:
            data, _ = payload.encode(value)
        except PayloadError:  # e.g. a trusted model from a pickled result: write it as FLAME does
            data = pickle.dumps(value)
    out.write_bytes(data)
    print(f"wrote {len(data)} bytes to {out}")


def _result(args: argparse.Namespace) -> int:
    run = _connect(args).attach(args.id)
    _print_result(run.result(trusted=args.trust), Path(args.out) if args.out else None)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    run = _connect(args).attach(args.id)
    run.cancel()
    print(f"cancelled {run.id}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--hub", default=None, help="a hub URL (default: the active profile)")

    sp = subparsers.add_parser("submit", help="sign and submit an analysis (.py or notebook)")
    sp.add_argument("path", help="the entrypoint .py, or a notebook with %%%%flame cells")
    sp.add_argument("--nodes", default=None, help="comma-separated node names (default: all)")
    sp.add_argument("--name", default=None, help="a name for the analysis")
    sp.add_argument("--image", default=None, help="the master image (default: python/base)")
    sp.add_argument(
        "--sealed",
        action="store_true",
        help="the analysis seals its result itself (for hubs whose nodes store it as written)",
    )
    sp.add_argument("--wait", action="store_true", help="follow it and print the result")
    sp.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    common(sp)
    sp.set_defaults(func=_submit)

    st = subparsers.add_parser("status", help="your analyses, or one analysis per node")
    st.add_argument("id", nargs="?", default=None, help="an analysis id (or a unique prefix)")
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    common(st)
    st.set_defaults(func=_status)

    lg = subparsers.add_parser("logs", help="every node's log lines, merged by time")
    lg.add_argument("id", help="an analysis id (or a unique prefix)")
    lg.add_argument("--node", default=None, help="only this node's lines (name or id)")
    lg.add_argument("--level", default=None, help="emerg|alert|crit|error|warn|notice|info|debug")
    common(lg)
    lg.set_defaults(func=_logs)

    rs = subparsers.add_parser("result", help="verify, decrypt and print (or save) the result")
    rs.add_argument("id", help="an analysis id (or a unique prefix)")
    rs.add_argument("--out", default=None, help="write the payload (JSON/.npy/Parquet) here")
    rs.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="CLASS",
        help="a class (module.Name) a pickled result may hold beyond plain data, NumPy and "
        "pandas; repeat for several",
    )
    common(rs)
    rs.set_defaults(func=_result)

    cc = subparsers.add_parser("cancel", help="stop an analysis")
    cc.add_argument("id", help="an analysis id (or a unique prefix)")
    common(cc)
    cc.set_defaults(func=_cancel)
