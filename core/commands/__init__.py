"""Subcommands of `python -m geo4d` that need no Blender."""
