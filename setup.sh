#!/usr/bin/env bash
# Set up lookups on a fresh machine: a virtual environment in .venv with the CPU build of
# torch installed first (so pip never pulls the multi-GB CUDA build), then lookups and its extras.
# Usage: bash setup.sh            (GPU machines: set TORCH_SPEC, e.g. TORCH_SPEC="torch==2.13.0")
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[all,dev]"
echo "lookups is installed in .venv: run .venv/bin/lookups --help"
