"""`flame-lab node review|approve|reject ANALYSIS --node NAME`: a sandbox node's admin face."""

from __future__ import annotations

import argparse
import json


def _review(args: argparse.Namespace) -> int:
    from flame_lab.sandbox.admin import review
    from flame_lab.textsafe import shown

    found = review(args.analysis, args.node, args.home)
    if args.json:
        print(json.dumps(found.to_dict(), indent=1, default=str))
    else:
        print(shown(found.to_text()))
    return 0


def _decide(args: argparse.Namespace) -> int:
    from flame_lab.sandbox.admin import decide

    approve = args.verb == "approve"
    comment = decide(args.analysis, args.node, approve, args.reason, args.home)
    print(f"{args.node}: {'approved' if approve else 'rejected'} ({comment})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser("node", help="act as a sandbox node's admin: review, decide")
    verbs = sp.add_subparsers(dest="verb", metavar="VERB", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("analysis", help="the analysis id")
        p.add_argument("--node", required=True, help="the node whose admin you act as")
        p.add_argument("--home", default=None, help="the sandbox folder (default: the usual)")

    rv = verbs.add_parser(
        "review", help="signer, files, diff against the last approved version, risk scan"
    )
    common(rv)
    rv.add_argument("--json", action="store_true", help="print JSON instead of text")
    rv.set_defaults(func=_review)
    ap = verbs.add_parser("approve", help="approve the analysis at this node (its own ledger)")
    common(ap)
    ap.add_argument("--reason", default=None, help="comment shown to the researcher")
    ap.set_defaults(func=_decide)
    rj = verbs.add_parser("reject", help="reject the analysis at this node, with the reason")
    common(rj)
    rj.add_argument("--reason", required=True, help="why (shown to the researcher)")
    rj.set_defaults(func=_decide)
