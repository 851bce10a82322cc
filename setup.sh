#!/usr/bin/env bash
# Set up lookups on a fresh machine: a virtual environment in .venv with the CPU build of torch
# installed first (so pip never pulls the multi-GB CUDA build), a portable llama-cpp-python,
# then lookups and all its extras.
# Usage: bash setup.sh [--test-tools]
#   --test-tools  also install the system tools the tests use, if missing (Debian packages,
#                 root or sudo): redis-server, postgresql (the tests start their own server
#                 with its initdb/pg_ctl), chromium (renders the report), docker-compose
#                 (validates docker-compose.yml).
# GPU machines: set TORCH_SPEC, e.g. TORCH_SPEC="torch==2.13.0" with a CUDA index configured.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "--test-tools" ]; then
    missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    # Debian keeps initdb off PATH, under /usr/lib/postgresql/<version>/bin
    command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
        || missing+=(postgresql)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    if [ ${#missing[@]} -gt 0 ]; then
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
elif [ $# -gt 0 ]; then
    echo "usage: bash setup.sh [--test-tools]" >&2
    exit 2
fi
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
LLAMA_VERSION=0.3.36
# llama-cpp-python compiles from source. Its default build targets the building CPU's every
# instruction (-march=native), and such a wheel in pip's cache dies with "Illegal instruction"
# on another CPU; so build a portable one (AVX2/FMA/F16C) once, into a cache of our own.
WHEELS=${LOOKUPS_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lookups/wheels}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip
pip install -q "$TORCH_SPEC"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building a portable llama-cpp-python $LLAMA_VERSION (about 5 minutes on 2 cores, once)"
    mkdir -p "$WHEELS"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
        pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python -w "$WHEELS" \
        "llama-cpp-python==$LLAMA_VERSION"
fi
pip install -q "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
pip install -q -e ".[all,dev]"
echo "lookups is installed in .venv: run .venv/bin/lookups --help"
