#!/usr/bin/env bash
# Create .venv with unblur and its test tools. torch is installed first, pinned to 2.13.0, so that pip
# never resolves a newer (CUDA) build; on machines without that local wheel, any torch <= 2.13.0 works.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch, unblur, pytest, xdist, hypothesis, msgpack, astropy, dask, distributed, zarr, matplotlib, psutil" 2>/dev/null; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[test]"
fi
