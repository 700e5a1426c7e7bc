#!/usr/bin/python3
"""Celery 5.2 (Debian's python3-celery) on a private redis-server: the workloads of kgflow's queue bench.

  celery_bench.py [--tasks 3000] [--processes 2] [--latency-tasks 800] [--delay-ms 50]
                  [--latency-concurrency 8] [--runs 3] [--redis-port PORT] [--json FILE]

Two workloads, each run --runs times:
  - no-op: --tasks tasks that return at once, drained by one `celery worker` with --processes
    prefork processes (kgflow's bench drains with 2 worker processes);
  - fixed latency: --latency-tasks tasks that sleep --delay-ms, drained by one worker with
    --latency-concurrency prefork processes (kgflow: 2 processes x KG_CONCURRENCY_PER_PROCESS 4 = 8
    chunks at once).
Each run flushes Redis, enqueues every task while no worker runs (apply_async, one by one: the
enqueue rate is reported too), then starts the worker (`python3 -m celery -A celery_tasks worker`,
Celery's defaults otherwise: prefetch multiplier 4, early acks) and polls the counter the tasks
increment (celery_tasks.py) every 25 ms until all are done: tasks/s is the tasks done between the
first poll that sees one and the poll that sees the last, over the time between (as kgflow's).
The worker is stopped by pid (SIGTERM, SIGKILL after 30 s).

Without --redis-port a private redis-server is started by scripts/test_servers.sh and stopped by
pid at the end. Prints RESULT lines; exit 0 done, 1 a run failed, 2 usage.
Run with Debian's /usr/bin/python3 (where python3-celery lives).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from queue_overhead import BenchError, Servers, emit, median  # noqa: E402

POLL_SECONDS = 0.025
STOP_TIMEOUT = 30.0


def run_celery(redis_port, workload, tasks, concurrency, delay_ms=0, deadline_s=600.0):
    """One run: enqueue `tasks` tasks of `workload` ("noop" or "sleep"), then drain them."""
    broker = f"redis://127.0.0.1:{redis_port}/0"
    os.environ["KG_CELERY_BROKER"] = broker
    sys.path.insert(0, HERE)
    import redis
    import celery_tasks

    r = redis.Redis(host="127.0.0.1", port=redis_port)
    r.flushall()
    celery_tasks.app.conf.broker_url = broker
    t0 = time.monotonic()
    with celery_tasks.app.producer_or_acquire() as producer:
        for _ in range(tasks):
            if workload == "noop":
                celery_tasks.noop.apply_async(producer=producer)
            else:
                celery_tasks.sleep_ms.apply_async((delay_ms,), producer=producer)
    enqueue_s = time.monotonic() - t0
    env = dict(os.environ, KG_CELERY_BROKER=broker, PYTHONPATH=HERE)
    log = open(os.devnull, "wb")
    worker = subprocess.Popen(["/usr/bin/python3", "-m", "celery", "-A", "celery_tasks", "worker", "--pool", "prefork",
                               "--concurrency", str(concurrency), "--loglevel", "WARNING"],
                              cwd=HERE, env=env, stdout=log, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        first = None
        while True:
            done = int(r.get(celery_tasks.DONE_KEY) or 0)
            now = time.monotonic()
            if first is None and done > 0:
                first = (now, done)
            if done >= tasks:
                break
            if worker.poll() is not None:
                raise BenchError(f"celery worker exited {worker.returncode}: {worker.stderr.read()[-500:]!r}")
            if now - started > deadline_s:
                raise BenchError(f"celery drain past {deadline_s:.0f} s: {done} of {tasks} done")
            time.sleep(POLL_SECONDS)
        span = now - first[0]
        return {"tasks": tasks, "enqueue_seconds": enqueue_s, "enqueue_per_s": tasks / enqueue_s,
                "drain_seconds": span, "counted": done - first[1],
                "tasks_per_s": (done - first[1]) / span if span > 0 else None,
                "to_first_done_s": first[0] - started}
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=3000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--latency-tasks", type=int, default=800)
    ap.add_argument("--delay-ms", type=int, default=50)
    ap.add_argument("--latency-concurrency", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--redis-port", type=int)
    ap.add_argument("--json")
    opts = ap.parse_args()
    if min(opts.tasks, opts.processes, opts.latency_tasks, opts.latency_concurrency, opts.runs) < 1 or opts.delay_ms < 0:
        ap.error("counts must be at least 1, --delay-ms at least 0")
    out = {}
    servers = None
    try:
        if opts.redis_port is None:
            servers = Servers(want_mariadb=False).__enter__()
        port = opts.redis_port or servers.redis_port
        for name, workload, n, conc, delay in (("noop", "noop", opts.tasks, opts.processes, 0),
                                               (f"delay{opts.delay_ms}ms", "sleep", opts.latency_tasks,
                                                opts.latency_concurrency, opts.delay_ms)):
            runs = []
            for i in range(opts.runs):
                r = run_celery(port, workload, n, conc, delay)
                runs.append(r)
                print(f"  celery {name} run {i + 1}: enqueued {n} in {r['enqueue_seconds']:.2f} s "
                      f"({r['enqueue_per_s']:,.0f}/s); {conc} processes drained {r['counted']} in "
                      f"{r['drain_seconds']:.3f} s ({r['tasks_per_s']:,.1f} tasks/s)", flush=True)
            out[name] = {"tasks": n, "concurrency": conc, "delay_ms": delay,
                         "tasks_per_s": median([r["tasks_per_s"] for r in runs]),
                         "enqueue_per_s": median([r["enqueue_per_s"] for r in runs]), "runs": runs}
            emit(f"celery_{name}.tasks_per_s", out[name]["tasks_per_s"], "tasks/s", opts.runs, tasks=n,
                 concurrency=conc)
    except BenchError as e:
        print(f"celery_bench: {e}", file=sys.stderr)
        return 1
    finally:
        if servers is not None:
            servers.__exit__(None, None, None)
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
