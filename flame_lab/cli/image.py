"""`flame-lab image list|check|requirements`: which FLAME master image a draft needs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flame_lab.draft import Draft
from flame_lab.images import catalog as catalogs
from flame_lab.images.fit import requirements_txt


def _list(args: argparse.Namespace) -> int:
    catalog = catalogs.load()
    offered: set[str] | None = None
    if args.hub:
        from flame_lab.federation import connect

        offered = set(connect(args.hub).master_images())
    images = [i for p, i in sorted(catalog.images.items()) if offered is None or p in offered]
    unknown = sorted(offered - set(catalog.images)) if offered is not None else []
    if args.json:
        print(json.dumps({"images": catalogs.describe(images), "unlisted": unknown}, indent=2))
        return 0
    src = catalog.source
    print(f"package lists from {src.get('repository', '?')} at {src.get('commit', '?')[:12]}")
    for image in images:
        packages = ", ".join(r.name for r in image.requirements[6:]) if image.complete else ""
        state = f"Python {image.python or '?'}" if image.complete else "package list unknown"
        print(f"  {image.path:<34} {state:<22} {packages[:60]}")
    for path in unknown:
        print(f"  {path:<34} {'not in the catalog':<22}")
    return 0


def _check(args: argparse.Namespace) -> int:
    result = Draft.from_path(Path(args.path)).check(image=args.image)
    print(result.summary(shown=None))  # the command that answers "which images fit"
    return 0


def _requirements(args: argparse.Namespace) -> int:
    text = requirements_txt(Draft.from_path(Path(args.path)), base=args.base)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    image = subparsers.add_parser("image", help="FLAME master images: list, check, requirements")
    verbs = image.add_subparsers(dest="image_command", metavar="VERB")
    verbs.required = True
    ls = verbs.add_parser("list", help="the master images flame_lab knows the packages of")
    ls.add_argument("--hub", default=None, help="only those this hub offers (a hub URL)")
    ls.add_argument("--json", action="store_true", help="print the lists as JSON")
    ls.set_defaults(func=_list)
    ck = verbs.add_parser("check", help="which images fit a draft; refuse if IMAGE lacks a module")
    ck.add_argument("path", help="the entrypoint .py, or a notebook with %%%%flame cells")
    ck.add_argument("--image", default=None, help="a master image, e.g. python/ml")
    ck.set_defaults(func=_check)
    rq = verbs.add_parser(
        "requirements", help="a requirements.txt for a custom image that runs the draft"
    )
    rq.add_argument("path", help="the entrypoint .py, or a notebook with %%%%flame cells")
    rq.add_argument("--base", default=catalogs.DEFAULT_IMAGE, help="the image to build on")
    rq.add_argument("--out", default=None, help="write it here instead of printing it")
    rq.set_defaults(func=_requirements)
