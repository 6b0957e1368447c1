"""The `python -m geo4d` command line: one subcommand per module, errors as messages and exit codes.

A command module defines NAME, HELP, add_arguments(parser) and run(args) -> int. Command modules
import heavy libraries (torch, bpy) inside run(), so that `--help` stays instant and torch starts after
core.cpu's OpenMP defaults, which every command gets unless its module sets SHARES_CPU = False.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import NoReturn

from .cpu import apply_openmp_defaults
from .errors import Cancelled, Geo4DError, SettingError


def size_argument(text: str) -> tuple[int, int]:
    """argparse type of a WIDTHxHEIGHT option (core.frame_size's parse_size, imported when used)."""
    from .frame_size import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2); --help has the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@contextmanager
def options_named(options: Mapping[str, str]) -> Iterator[None]:
    """Say a SettingError raised inside in the command line's words: `--end`, not `ReconstructionSettings.end`.

    options: settings field -> the option that sets it; a field not in it is re-raised as it is.
    """
    try:
        yield
    except SettingError as error:
        if error.field not in options:
            raise
        raise Geo4DError(f"{error.named(options[error.field])} Change the option.") from error


def build_parser(commands: Sequence[ModuleType]) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m geo4d", description="Reconstruct a video into 4D geometry and bring it into Blender."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in commands:
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run, shares_cpu=getattr(module, "SHARES_CPU", True))
    return parser


def main(commands: Sequence[ModuleType], argv: Sequence[str] | None = None) -> int:
    args = build_parser(commands).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if args.shares_cpu:
        apply_openmp_defaults()
    try:
        return args.run(args)
    except Cancelled as error:
        print(f"geo4d: {error}", file=sys.stderr)
        return 130
    except Geo4DError as error:
        print(f"geo4d: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("geo4d: interrupted", file=sys.stderr)
        return 130
