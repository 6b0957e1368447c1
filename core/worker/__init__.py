"""The worker process that runs the heavy work outside Blender: its protocol, the parent side and the child.

protocol.py and parent.py are torch-free (the Blender side imports them); child.py runs in the worker.
"""
