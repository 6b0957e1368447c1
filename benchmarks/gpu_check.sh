#!/usr/bin/env bash
# One GPU check (benchmarks/gpu_check.py): about 8 minutes on one H100/H200, one JSON report.
# Usage: benchmarks/gpu_check.sh [--dry-run] [--output PATH]   (--dry-run: on the CPU at tiny size, for CI)
# PYTHON picks the interpreter (default: the repository's .venv, else python3). Where geo4d is not
# installed in it, the repository is installed editable (no downloads); diffusers and av must be there.
set -euo pipefail
# Idle OpenMP threads wait passively: spinning ones slow every other process on a shared CPU.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import geo4d.core" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --no-deps --no-build-isolation --no-index -e . >&2
fi
for module in diffusers av einops safetensors; do
    if ! "$PYTHON" -c "import $module" 2>/dev/null; then
        echo "gpu_check: $PYTHON cannot import $module; install it (pip install -r requirements.txt) and run again." >&2
        exit 2
    fi
done
exec "$PYTHON" benchmarks/gpu_check.py "$@"
