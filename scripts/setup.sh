#!/usr/bin/env bash
# Set up a development machine: a virtualenv in .venv with streamlog (editable, with its C
# codec built) and everything the tests use. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/python -c "import streamlog.log.records as r; print('streamlog installed; record codec:', r.IMPLEMENTATION)"
