"""Entry point of `python -m geo4d`: the ordered list of subcommands."""

import sys

from .blender_commands import demo, import_result
from .core.cli import main as run_cli
from .core.commands import convert_checkpoint, metrics, reconstruct, synth, train
from .core.commands import eval as eval_command

COMMANDS = (synth, reconstruct, import_result, demo, train, convert_checkpoint, metrics, eval_command)


def main() -> int:
    return run_cli(COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
