"""Entry point of `python -m geo4d`: the ordered list of subcommands."""

import sys

from .core.cli import main as run_cli

COMMANDS = ()


def main() -> int:
    return run_cli(COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
