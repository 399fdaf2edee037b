#!/usr/bin/env bash
# The whole test suite, with its own setup: lint, unit tests, a real tritonserver over gRPC,
# the frontends, and the pages in headless chromium. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
venv="${SD_VENV:-.venv}"
echo "[test] ruff"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
echo "[test] pytest"
exec "$venv/bin/python" -m pytest "$@"
