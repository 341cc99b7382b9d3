"""Every option and argument of every `flame-lab` command says what it is for (issue 17)."""

from __future__ import annotations

import argparse

from flame_lab.cli import build_parser


def undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += undocumented(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_and_argument_has_a_help_text():
    assert undocumented(build_parser(), "flame-lab") == []


def test_the_check_finds_an_option_without_one():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["demo"].add_argument("--quietly", action="store_true")
    assert undocumented(parser, "flame-lab") == ["flame-lab demo --quietly"]
