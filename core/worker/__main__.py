"""`python -m geo4d.core.worker`: the worker process (core/worker/child.py)."""

import sys

from .child import main

if __name__ == "__main__":
    sys.exit(main())
