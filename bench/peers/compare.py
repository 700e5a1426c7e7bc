#!/usr/bin/python3
"""kgflow and Celery side by side, in one run, on the same workloads: tasks/s and kgflow/Celery ratios.

  compare.py --kgflow build/kgflow [--runs 3] [--tasks 3000] [--latency-tasks 800] [--delay-ms 50]
             [--distributed] [--out FILE]

One private redis-server (scripts/test_servers.sh) serves Celery; with --distributed it serves
kgflow too (with a private mariadbd for the task store and graph), flushed between runs; without
it kgflow runs embedded (SQLite). Both workloads, the runs of each side alternating so drift on
the machine hits both alike:
  - no-op: --tasks one-chunk documents / tasks that return at once; kgflow drains them with 2
    worker processes (bench/queue_overhead.py), Celery with a 2-process prefork worker;
  - fixed latency: --latency-tasks of --delay-ms each; kgflow's provider `bench` declared with
    `delay_ms` (2 processes x KG_CONCURRENCY_PER_PROCESS 4 = 8 at once), Celery with 8 prefork
    processes.
Rates are measured alike on both sides (celery_bench.py, queue_overhead.py): from the first task
done to the last, counted by polling every 25 ms. Prints the medians, the ratios and RESULT lines,
and writes everything to --out (default bench/results/peers-<UTC time>-<commit>.json).
Exit codes: 0 done; 1 a run failed; 2 usage. Run with Debian's /usr/bin/python3.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from queue_overhead import BenchError, Servers, emit, median, run_kgflow  # noqa: E402
from celery_bench import run_celery  # noqa: E402

KGFLOW_PROCESSES = 2
KGFLOW_CONCURRENCY_PER_PROCESS = 4  # KG_CONCURRENCY_PER_PROCESS's default


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kgflow", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--latency-tasks", type=int, default=800)
    ap.add_argument("--delay-ms", type=int, default=50)
    ap.add_argument("--distributed", action="store_true")
    ap.add_argument("--out")
    opts = ap.parse_args()
    if min(opts.runs, opts.tasks, opts.latency_tasks) < 1 or opts.delay_ms < 1:
        ap.error("--runs, --tasks, --latency-tasks and --delay-ms must be at least 1")
    if not os.access(opts.kgflow, os.X_OK):
        ap.error(f"--kgflow {opts.kgflow}: not an executable")
    mode = "distributed" if opts.distributed else "embedded"
    workloads = [
        ("noop", opts.tasks, 0, KGFLOW_PROCESSES),
        (f"delay{opts.delay_ms}ms", opts.latency_tasks, opts.delay_ms, KGFLOW_PROCESSES * KGFLOW_CONCURRENCY_PER_PROCESS),
    ]
    out = {"kgflow_mode": mode, "workloads": {}}
    try:
        with Servers(want_mariadb=opts.distributed) as servers:
            kg_servers = servers if opts.distributed else None
            for name, n, delay, celery_conc in workloads:
                kg_runs, celery_runs = [], []
                for i in range(opts.runs):
                    k = run_kgflow(opts.kgflow, n, KGFLOW_PROCESSES, delay, kg_servers)
                    c = run_celery(servers.redis_port, "noop" if delay == 0 else "sleep", n, celery_conc, delay)
                    kg_runs.append(k)
                    celery_runs.append(c)
                    print(f"  {name} run {i + 1}: kgflow {k['chunks_per_s']:,.1f} chunks/s, "
                          f"Celery {c['tasks_per_s']:,.1f} tasks/s", flush=True)
                kg = median([r["chunks_per_s"] for r in kg_runs])
                ce = median([r["tasks_per_s"] for r in celery_runs])
                ratio = kg / ce if kg and ce else None
                out["workloads"][name] = {
                    "tasks": n, "delay_ms": delay, "kgflow_processes": KGFLOW_PROCESSES,
                    "kgflow_concurrency": KGFLOW_PROCESSES * KGFLOW_CONCURRENCY_PER_PROCESS,
                    "celery_processes": celery_conc, "kgflow_per_s": kg, "celery_per_s": ce,
                    "kgflow_over_celery": ratio,
                    "kgflow_submit_docs_per_s": median([r["docs_per_s"] for r in kg_runs]),
                    "celery_enqueue_per_s": median([r["enqueue_per_s"] for r in celery_runs]),
                    "kgflow_runs": kg_runs, "celery_runs": celery_runs}
                print(f"{name} ({n} tasks, median of {opts.runs}): kgflow ({mode}) {kg:,.1f}/s, Celery {ce:,.1f}/s, "
                      f"kgflow/Celery {ratio:.2f}", flush=True)
                emit(f"peers_{name}_{mode}.kgflow_over_celery", ratio, "ratio", opts.runs, kgflow=kg, celery=ce,
                     tasks=n)
    except BenchError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 1
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    out.update({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit, "runs": opts.runs,
                "cores": os.cpu_count()})
    path = opts.out or os.path.join(HERE, "..", "results",
                                    f"peers-{mode}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{commit}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    print(f"# written to {os.path.normpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
