#!/usr/bin/env bash
# Set up a development machine: a virtualenv in .venv with streamlog (editable, with its C
# codec built) and everything the tests use, and .venv-faust with faust-streaming for the
# Faust compatibility tests. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# kcat (librdkafka's command-line client) is a real Kafka client the tests drive;
# Graphviz's dot draws `streamlog topology --png` (optional: without it PNG is refused);
# Debian's Chromium and its driver show the worker's status page to a browser test;
# PostgreSQL's server binaries run a throwaway cluster for the PostgreSQL connectors' tests.
missing=""
command -v kcat >/dev/null 2>&1 || missing="$missing kcat"
command -v dot >/dev/null 2>&1 || missing="$missing graphviz"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq $missing >/dev/null
    else
        echo "note: not installed:$missing (apt-get install$missing); their tests will be skipped" >&2
    fi
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/python -c "import streamlog.log.records as r; print('streamlog installed; record codec:', r.IMPLEMENTATION)"
# faust-streaming alone in .venv-faust, for the tests that run a real Faust program
# (tests/dsl/tables/test_faust_changelog.py, tests/serde/test_faust_rules.py): never in
# .venv, its click < 8.4 cap clashes with streamlog's. STREAMLOG_SKIP_FAUST=1 skips it
# (those tests then skip, saying why).
if [ "${STREAMLOG_SKIP_FAUST:-0}" != 1 ]; then
    if [ ! -x .venv-faust/bin/python ]; then
        "$PYTHON" -m venv .venv-faust
    fi
    .venv-faust/bin/python -m pip install -q --upgrade pip
    .venv-faust/bin/python -m pip install -q -r requirements-faust.txt
    .venv-faust/bin/python -c "from importlib.metadata import version; print('faust-streaming', version('faust-streaming'), 'in .venv-faust')"
fi
