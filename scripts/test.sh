#!/usr/bin/env bash
# Set up .venv (if needed) and run the test suite.  Data tests read UNBLUR_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest "$@"
