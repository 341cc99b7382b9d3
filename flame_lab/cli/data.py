"""`flame-lab data [NODE]`: the data dictionary, what each node holds (never a row)."""

from __future__ import annotations

import argparse
import json


def _data(args: argparse.Namespace) -> int:
    from flame_lab.federation import connect

    fed = connect(args.hub) if args.hub else connect(start=False)
    dictionary = fed.datasets(args.node)
    if args.json:
        print(json.dumps(dictionary.to_dict(), indent=1))
    else:
        print(dictionary.to_text())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser(
        "data", help="what each node holds: tables, columns, types, FHIR codes, count bands"
    )
    sp.add_argument("node", nargs="?", default=None, help="one node's name (default: all)")
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp.add_argument("--hub", default=None, help="a hub URL (default: the active profile)")
    sp.set_defaults(func=_data)
