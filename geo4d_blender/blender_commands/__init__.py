"""Subcommands of `python -m geo4d` that run Blender (the bpy module)."""
