"""Choosing the passphrase of a new identity: long enough, typed the same twice, asked again
(not aborted) when the two differ. Shared by `flame-lab keys init`, `flame-lab lab|demo` and
`%flame keys init`; an existing key's passphrase is asked by security.keys.get_passphrase."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable

from flame_lab.errors import PassphraseError
from flame_lab.security.keys import PASSPHRASE_ENV

MIN_CHARS = 8
TRIES = 3


def new_passphrase(
    prompt: str = "New passphrase for your identity: ",
    ask: Callable[[str], str] | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """FLAME_LAB_PASSPHRASE if set (and long enough), else asked until chosen well."""
    ask = ask or getpass.getpass
    if PASSPHRASE_ENV in os.environ:
        value = os.environ[PASSPHRASE_ENV]
        if len(value) < MIN_CHARS:
            raise PassphraseError(
                f"{PASSPHRASE_ENV} holds fewer than {MIN_CHARS} characters",
                hint=f"A new key needs a passphrase of at least {MIN_CHARS} characters.",
            )
        return value
    for _ in range(TRIES):
        try:
            value = ask(prompt)
            if len(value) < MIN_CHARS:
                say(f"Use at least {MIN_CHARS} characters (a few words are easy to remember).")
                continue
            if ask("Repeat the passphrase: ") != value:
                say("The two differ; once more.")
                continue
        except EOFError:
            raise PassphraseError(
                "No passphrase was given (no terminal to ask on).",
                hint=f"Run in a terminal, or set {PASSPHRASE_ENV}.",
            ) from None
        return value
    raise PassphraseError(
        f"no passphrase chosen after {TRIES} tries",
        hint=f"Choose one of at least {MIN_CHARS} characters and type it the same twice.",
    )
