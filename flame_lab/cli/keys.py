"""`flame-lab keys`: create, show, export and check the researcher's identity key file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flame_lab import config
from flame_lab.errors import FlameLabError, KeyFileError, KeyFileExists
from flame_lab.security.keyid import display
from flame_lab.security.keys import (
    Identity,
    NodePublicIdentity,
    PublicIdentity,
    check_identity,
    get_passphrase,
    load_identity,
    read_public,
    save_identity,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="your researcher identity (key file)")
    verbs = parser.add_subparsers(dest="keys_command", metavar="VERB")
    verbs.required = True

    init = verbs.add_parser("init", help="create a new identity key file")
    _path_option(init)
    init.add_argument(
        "--kdf",
        choices=("scrypt", "argon2id"),
        default="scrypt",
        help="how the passphrase becomes the key file's key (default: scrypt)",
    )
    init.set_defaults(func=cmd_init)

    show = verbs.add_parser("show", help="print the key id and public keys (no passphrase)")
    _path_option(show)
    show.add_argument("--json", action="store_true", help="print the public identity as JSON")
    show.set_defaults(func=cmd_show)

    export = verbs.add_parser("export-public", help="the public identity JSON for node admins")
    _path_option(export)
    export.add_argument("--out", type=Path, help="write to this new file instead of stdout")
    export.set_defaults(func=cmd_export_public)

    check = verbs.add_parser("check", help="unlock the identity and prove it signs and decrypts")
    _path_option(check)
    check.set_defaults(func=cmd_check)


def _path_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--path", type=Path, default=None, help="key file (default: config.identity_file())"
    )


def _path(args: argparse.Namespace) -> Path:
    return args.path.expanduser() if args.path else config.identity_file()


def cmd_init(args: argparse.Namespace) -> int:
    path = _path(args)
    if path.exists() or path.is_symlink():
        raise KeyFileExists(f"A key file already exists at {path}; it was left untouched.")
    from flame_lab.newpassphrase import new_passphrase

    passphrase = new_passphrase()
    identity = Identity.generate()
    save_identity(path, identity, passphrase, kdf=args.kdf)
    print(f"Created identity {display(identity.key_id)}")
    print(f"Key file: {path}")
    print("Share its public half with node admins: flame-lab keys export-public")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    path = _path(args)
    public = read_public(path)
    if args.json:
        print(json.dumps(public.to_dict(), indent=2))
        return 0
    kind = "node" if isinstance(public, NodePublicIdentity) else "researcher"
    print(f"Key id:   {display(public.key_id)}")
    print(f"Kind:     {kind}")
    print(f"Key file: {path}")
    for name, value in public.to_dict().items():
        if name != "keyId":
            print(f"{name + ':':<9} {value}")
    return 0


def cmd_export_public(args: argparse.Namespace) -> int:
    public: PublicIdentity | NodePublicIdentity = read_public(_path(args))
    text = json.dumps(public.to_dict(), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = args.out.expanduser()
    try:
        with out.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise FlameLabError(
            f"{out} already exists; it was left untouched.",
            hint="Choose another --out file or remove the old one.",
        ) from None
    except OSError as exc:
        raise FlameLabError(
            f"Cannot write {out}: {exc.strerror}", hint="Choose a folder you can write to."
        ) from None
    print(f"Wrote the public identity {display(public.key_id)} to {out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    path = _path(args)
    # A missing, malformed or node key file fails before asking for a passphrase.
    if isinstance(read_public(path), NodePublicIdentity):
        raise KeyFileError(
            f"{path} holds a node identity; `keys check` checks a researcher identity.",
            hint="Pass your own identity file with --path, or omit --path.",
        )
    identity = load_identity(path, get_passphrase())
    check_identity(identity)
    print(f"ok: identity {display(identity.key_id)} can sign and decrypt")
    return 0
