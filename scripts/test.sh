#!/usr/bin/env bash
# The whole test suite, on a fresh machine or not: set up (idempotent: scripts/setup.sh
# reuses .venv and what it installed), then pytest on two processes (pytest-xdist; the
# tests talk to brokers and workers they start, so most of their time is waiting).
# Arguments go to pytest: bash scripts/test.sh tests/dsl -k windowed
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -n "${STREAMLOG_TEST_PROCESSES:-2}" "$@"
