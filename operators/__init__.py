"""Blender operators: thin glue that parses parameters, calls builders or the worker, and reports."""
