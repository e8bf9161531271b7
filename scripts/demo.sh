#!/usr/bin/env bash
# The ride ETA/matching app end to end on the bundled log (file://, a temp directory):
# starts `streamlog worker apps/eta_matching/app.py`, runs the generator for DEMO_SECONDS
# (default 30), waits until every request is answered, prints a summary and the live
# page's address, stops the worker and exits 0. Sets up .venv first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ -x .venv/bin/python ] || bash scripts/setup.sh
PY=$ROOT/.venv/bin/python
SECONDS_TO_RUN=${DEMO_SECONDS:-30}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamlog-demo.XXXXXX")
WORKER_PID=""
cleanup() {
    if [ -n "$WORKER_PID" ] && kill -0 "$WORKER_PID" 2>/dev/null; then
        kill -TERM "$WORKER_PID" 2>/dev/null || true
        wait "$WORKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
BROKER="file://$WORK/log"
"$ROOT/.venv/bin/streamlog" worker "$ROOT/apps/eta_matching/app.py" --broker "$BROKER" \
    --web-port 0 --listen 127.0.0.1:0 >"$WORK/worker.log" 2>&1 &
WORKER_PID=$!
for _ in $(seq 600); do
    grep -q "worker ready" "$WORK/worker.log" && break
    kill -0 "$WORKER_PID" 2>/dev/null || { cat "$WORK/worker.log" >&2; exit 1; }
    sleep 0.1
done
grep -q "worker ready" "$WORK/worker.log" || { echo "worker did not start" >&2; exit 1; }
PAGE=$(grep -o "web endpoint on [^ ]*" "$WORK/worker.log" | head -1 | cut -d' ' -f4)
echo "live page: $PAGE/  (while the demo runs)"
echo "generating traffic for $SECONDS_TO_RUN s ..."
"$PY" -m apps.eta_matching.generate --rate 3 --duration "$SECONDS_TO_RUN" --seed 42 \
    --time-scale 10 --broker "$BROKER" >"$WORK/generated.json"
echo "generated: $(cat "$WORK/generated.json")"
# every request answered before the summary (bounded: 60 s)
"$PY" -m apps.eta_matching.summary --broker "$BROKER" --wait 60
echo "live page was: $PAGE/"
