#!/usr/bin/env bash
# Make .venv-peers: the stream processors benchmarks/bench_streams.py compares streamlog with
# (Quix Streams, faust-streaming). A virtualenv of their own, because their pins (click < 8.4,
# confluent-kafka < 2.13) clash with streamlog's .venv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv-peers/bin/python ]; then
    "$PYTHON" -m venv .venv-peers
fi
.venv-peers/bin/python -m pip install -q --upgrade pip
.venv-peers/bin/python -m pip install -q -r benchmarks/peers/requirements.txt
.venv-peers/bin/python - <<'PY'
from importlib.metadata import version
for name in ("quixstreams", "faust-streaming", "confluent-kafka", "rocksdict", "aiokafka"):
    print(f"{name} {version(name)}")
PY
