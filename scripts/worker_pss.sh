#!/usr/bin/env bash
# Memory of an idle worker process (docs/architecture.md, "HTTP server notes"): starts
# `BINARY start` with KG_WORKERS_PER_PROVIDER=1 on a free loopback port and a fresh data dir,
# RUNS times, waits (up to 30 s) until /api/v1/workers shows the node's worker idle, lets it
# settle 2 s, reads /proc/<worker>/smaps_rollup and prints each run and the median, in kB, of
# Pss, Rss, Private_Clean, Private_Dirty and Shared_Clean.
#   usage: scripts/worker_pss.sh BUILD/kgflow [RUNS=3]
set -euo pipefail
bin=${1:?usage: worker_pss.sh KGFLOW_BINARY [RUNS]}
runs=${2:-3}
fields="Pss Rss Private_Clean Private_Dirty Shared_Clean"
results=$(mktemp)
node=""
dir=""
cleanup() {
  if [ -n "$node" ] && kill -0 "$node" 2>/dev/null; then kill -TERM "$node"; wait "$node" || true; fi
  [ -n "$dir" ] && rm -rf "$dir"
  rm -f "$results"
}
trap cleanup EXIT

for i in $(seq 1 "$runs"); do
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  KG_HTTP_ADDR=127.0.0.1:$port KG_DATA_DIR=$dir/data KG_WORKERS_PER_PROVIDER=1 "$bin" start >"$dir/out" 2>"$dir/err" &
  node=$!
  worker=""
  for _ in $(seq 1 300); do
    worker=$(curl -fsS "http://127.0.0.1:$port/api/v1/workers" 2>/dev/null | python3 -c '
import json, sys
ps = [p for n in json.load(sys.stdin)["nodes"] for p in n["processes"] if p["state"] == "idle" and p["pid"] > 0]
print(ps[0]["pid"] if ps else "")' 2>/dev/null || true)
    [ -n "$worker" ] && break
    sleep 0.1
  done
  if [ -z "$worker" ]; then
    echo "run $i: no idle worker within 30 s; node stderr:" >&2
    cat "$dir/err" >&2
    exit 1
  fi
  sleep 2
  line="run $i worker $worker:"
  vals=""
  for f in $fields; do
    v=$(awk -v f="$f:" '$1 == f { print $2 }' "/proc/$worker/smaps_rollup")
    line="$line $f=$v"
    vals="$vals $v"
  done
  echo "$line"
  echo "$vals" >>"$results"
  kill -TERM "$node"
  wait "$node" || true
  node=""
  rm -rf "$dir"
  dir=""
done

python3 - "$results" "$fields" <<'EOF'
import statistics, sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
names = sys.argv[2].split()
print("median of %d: " % len(rows) + " ".join("%s=%d kB" % (n, statistics.median(c)) for n, c in zip(names, zip(*rows))))
EOF
