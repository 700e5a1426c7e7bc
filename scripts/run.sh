#!/usr/bin/env bash
# `make run`: start a node (role all, embedded backends under ./data, builtin provider),
# submit the sample documents, print where the API is and what the graph holds, then
# keep serving until Ctrl-C.
set -euo pipefail
bin=${1:-build/kgflow}
cd "$(dirname "$0")/.."
export KG_DATA_DIR=${KG_DATA_DIR:-./data}
export KG_HTTP_ADDR=${KG_HTTP_ADDR:-127.0.0.1:8080}
url="http://${KG_HTTP_ADDR}"

# Its own session, so that Ctrl-C reaches it once, through the trap below.
setsid "$bin" start &
pid=$!
stop() {
  trap - INT TERM EXIT
  if kill -0 "$pid" 2>/dev/null; then
    echo; echo "stopping kgflow (pid $pid)..."
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

for _ in $(seq 1 100); do
  if curl -fsS "$url/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "kgflow failed to start" >&2; exit 1; fi
  sleep 0.1
done

"$bin" submit --wait samples/*.txt
echo
echo "kgflow is serving at $url  (dashboard: $url/ )"
echo -n "graph: "; "$bin" graph stats
echo "try:  $bin graph search helix    |  $bin workers    |  curl $url/api/v1/graph/export?format=graphml"
echo "Ctrl-C to stop."
wait "$pid"
