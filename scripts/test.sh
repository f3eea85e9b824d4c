#!/usr/bin/env bash
# Set up .venv (if needed) and run the test suite.  Data tests read UNBLUR_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# one test process per core, at most 4 (pytest-xdist; the tests pin torch to one thread each)
workers=$(.venv/bin/python -c "import os; n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(); print(max(1, min(4, n or 1)))")
.venv/bin/python -m pytest -n "$workers" "$@"
