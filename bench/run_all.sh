#!/usr/bin/env bash
# `make bench`: every benchmark, with the machine noted (BENCH_LLM=1 adds issue 11's latency-bound
# LLM figures; BENCH_NEO4J=1 adds a node on Neo4j at
# full load; BENCH_PEERS=1 adds issue 9's queue
# overhead and Celery side-by-side benches, which take minutes; BENCH_DISTRIBUTED=1 runs them on a
# private Redis + MariaDB too). Numbers on 2 shared cores are noisy:
# compare medians of several runs.
#
# Besides the human-readable output, every figure is written (from the benches' RESULT lines)
# to bench/results/<UTC date>-<commit>.json with the machine, the commit and the date.
# `bench/figures.py FILE --write README.md` puts a result file's figures into the README's
# performance table; `make test` checks that the README quotes bench/results/latest.json.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
  echo "# $(date -u +%FT%TZ) $(uname -sr), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "# model: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  "$build/bench/supervisor_bench" "${BENCH_ITERATIONS:-200}" "${BENCH_IDLE_SECONDS:-20}" "${BENCH_CRASH_SECONDS:-30}"
  "$build/bench/pipeline_bench" "${BENCH_CHUNKS:-2000}" "${BENCH_WORKERS:-2}" "${BENCH_RUNS:-3}"
  "$build/bench/export_bench" "${BENCH_EXPORT_RELATIONS:-200000}"
  # Graph merges, 32 batches per call, into SQLite and into MySQL (a private mariadbd).
  "$build/bench/graph_merge_bench" "${BENCH_GRAPH_CHUNKS:-2000}" 32 "${BENCH_RUNS:-3}"
  # Graph writes into Neo4j (a private Neo4j 5.26): batched UNWIND against one statement per row.
  "$build/bench/neo4j_bench" "${BENCH_NEO4J_CHUNKS:-1000}" 32 "${BENCH_RUNS:-3}"
  "$build/bench/queue_bench" "${BENCH_QUEUE_CHUNKS:-20000}" "${BENCH_RUNS:-3}"
  "$build/bench/large_doc_bench" "${BENCH_LARGE_DOC_MB:-10}" "${BENCH_WORKERS:-2}" "${BENCH_RUNS:-3}"
  # The API server before (cpp-httplib, the binary of scripts/build_baseline.sh, built once) and
  # after (this build), in one run: requests/s, latency under slow clients, RSS of idle connections.
  "$here/../scripts/build_baseline.sh" >&2
  python3 "$here/http_bench.py" --before "$here/../build/baseline/kgflow" --after "$build/kgflow" \
    --load "$build/bench/http_load" --runs "${BENCH_HTTP_RUNS:-3}" --seconds "${BENCH_HTTP_SECONDS:-5}"
  # Opt-in (minutes; a private Neo4j per run): one node's throughput and the Bolt connections it
  # holds at full load against its budget, for pool sizes 1, 2 and 4.
  if [ "${BENCH_NEO4J:-0}" = 1 ]; then
    python3 "$here/neo4j_node_bench.py" --kgflow "$build/kgflow" --runs "${BENCH_RUNS:-3}"
  fi
  # Opt-in (about 6 minutes): LLM calls against the fake OpenAI-compatible server at 6 s per request,
  # 2 processes x 100 in flight (ideal 2,000 chunks/min), memory per call in flight, 10/50/100 in flight.
  if [ "${BENCH_LLM:-0}" = 1 ]; then
    python3 "$here/llm_bench.py" --kgflow "$build/kgflow" --runs "${BENCH_RUNS:-3}"
  fi
  # Opt-in (minutes): issue 9's queue overhead (embedded; with BENCH_DISTRIBUTED=1 on a private
  # Redis + MariaDB too) and the Celery side by side (bench/peers/README.md).
  if [ "${BENCH_PEERS:-0}" = 1 ]; then
    python3 "$here/queue_overhead.py" --kgflow "$build/kgflow" --runs "${BENCH_RUNS:-3}"
    if [ "${BENCH_DISTRIBUTED:-0}" = 1 ]; then
      python3 "$here/queue_overhead.py" --kgflow "$build/kgflow" --runs "${BENCH_RUNS:-3}" --distributed
    fi
    /usr/bin/python3 "$here/peers/compare.py" --kgflow "$build/kgflow" --runs "${BENCH_RUNS:-3}" \
      $([ "${BENCH_DISTRIBUTED:-0}" = 1 ] && echo --distributed)
  fi
} | tee "$out"
commit=$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$here/.." status --porcelain 2>/dev/null | grep -q . && echo "+dirty" || true)
mkdir -p "$here/results"
file="$here/results/$(date -u +%Y%m%dT%H%M%SZ)-$commit$dirty.json"
python3 "$here/figures.py" --collect "$out" --commit "$commit$dirty" > "$file"
echo "# figures written to bench/results/$(basename "$file"); to quote them in the README: cp it to bench/results/latest.json and run bench/figures.py bench/results/latest.json --write README.md"
