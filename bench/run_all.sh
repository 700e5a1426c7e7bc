#!/usr/bin/env bash
# `make bench`: every benchmark, with the machine noted. Numbers on 2 shared cores are noisy:
# compare medians of several runs.
set -euo pipefail
build=${1:-build}
echo "# $(date -u +%FT%TZ) $(uname -sr), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "# model: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
"$build/bench/supervisor_bench" "${BENCH_ITERATIONS:-30}" "${BENCH_IDLE_SECONDS:-20}" "${BENCH_CRASH_SECONDS:-30}"
"$build/bench/pipeline_bench" "${BENCH_CHUNKS:-2000}" "${BENCH_WORKERS:-2}" "${BENCH_RUNS:-3}"
"$build/bench/export_bench" "${BENCH_EXPORT_RELATIONS:-200000}"
