#!/usr/bin/env python3
"""Queue overhead of issue 9: how fast queued chunks drain end to end when the provider costs nothing.

  queue_overhead.py --kgflow build/kgflow [--docs 3000] [--workers 2] [--runs 3] [--delay-ms 0]
                    [--distributed] [--json FILE]

Each run starts its own node (`kgflow start`, NODE_ROLE all) in a temp dir with one provider,
`bench` (kind builtin, `delay_ms` from --delay-ms: 0 returns at once), declared in a KG_CONFIG
file, and no worker process (KG_WORKERS_PER_PROVIDER=0). It then
  1. submits --docs three-word documents ("Document N arrived.") through POST /api/v1/tasks/batch
     (NDJSON, at most 10,000 a request): the submission rate is documents / wall time of the
     requests, seen from the client;
  2. starts --workers worker processes with PUT /api/v1/providers/bench/processes and polls
     GET /metrics (kg_queue_chunks{provider="bench",state="done"|"dead"}) every 25 ms until every
     chunk is done or dead: the drain rate is the chunks done between the first poll that sees one
     done and the poll that sees the last, over the time between those polls (worker start-up is
     not counted).
The figures are medians of --runs fresh nodes.

Embedded by default (SQLite under the node's data dir). With --distributed, one private
redis-server and one mariadbd are started by scripts/test_servers.sh for the whole bench (stopped
by pid at the end, their temp dirs removed) and every node gets REDIS_HOST/REDIS_PORT and
DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME (a fresh database per run; Redis is flushed between
runs). A kgflow that has no distributed backends refuses those variables at start: the bench then
says so and exits 1.

Prints a summary and `RESULT {...}` lines (bench/result.h's format) that bench/figures.py
--collect gathers; --json FILE writes the figures and every run's raw numbers. Exit codes: 0 done;
1 a node, a server or a run failed (a chunk dead-lettered, a drain past its deadline); 2 usage.
"""
import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_SERVERS = os.path.join(HERE, "..", "scripts", "test_servers.sh")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
POLL_SECONDS = 0.025
MAX_BATCH = 10000  # documents per request the node takes (api/submission.h kMaxBatchDocuments)
PROVIDER = "bench"
_DATABASES = itertools.count()


class BenchError(Exception):
    pass


def http(method, url, body=None, content_type=None, timeout=120.0):
    """(status, body bytes) of one request; BenchError when there is no answer."""
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise BenchError(f"{method} {url}: {e}") from e


class Servers:
    """A private redis-server and mariadbd (scripts/test_servers.sh), stopped by pid on exit."""

    def __init__(self, want_mariadb=True):
        self.dir = tempfile.mkdtemp(prefix="kg-bench-servers-")
        self.want_mariadb = want_mariadb
        self.redis_port = self.redis_pid = self.mariadb_port = self.mariadb_pid = None

    def _start(self, kind):
        p = subprocess.run([TEST_SERVERS, "start", kind, os.path.join(self.dir, kind)], capture_output=True,
                           text=True, timeout=180)
        if p.returncode != 0:
            raise BenchError(f"starting {kind}: {p.stderr.strip()}")
        port, pid = p.stdout.split()
        return int(port), int(pid)

    def __enter__(self):
        try:
            self.redis_port, self.redis_pid = self._start("redis")
            if self.want_mariadb:
                self.mariadb_port, self.mariadb_pid = self._start("mariadb")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for pid in (self.mariadb_pid, self.redis_pid):
            if pid:
                subprocess.run([TEST_SERVERS, "stop", str(pid)], timeout=60, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def redis_cli(self, *args):
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis_port)] + list(args),
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise BenchError(f"redis-cli {' '.join(args)}: {p.stderr.strip()}")
        return p.stdout.strip()

    def create_database(self, name):
        p = subprocess.run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{self.mariadb_port}", "-ukgflow",
                            "-pkgflow-test", "-e", f"CREATE DATABASE `{name}`"], capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            raise BenchError(f"create database {name}: {p.stderr.strip()}")

    def env(self, db_name):
        return {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.redis_port), "DB_HOST": "127.0.0.1",
                "DB_PORT": str(self.mariadb_port), "DB_USER": "kgflow", "DB_PASSWORD": "kgflow-test",
                "DB_NAME": db_name}


class Node:
    """A kgflow node (NODE_ROLE all, no worker yet) in its own temp dir, stopped by pid on exit."""

    def __init__(self, binary, delay_ms, extra_env=None):
        self.binary = os.path.abspath(binary)  # the node runs in its own dir
        self.delay_ms = delay_ms
        self.extra_env = extra_env or {}
        self.dir = tempfile.mkdtemp(prefix="kg-queue-bench-")
        self.proc = None
        self.port = None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self):
        config = os.path.join(self.dir, "kgflow.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f'[providers.{PROVIDER}]\nkind = "builtin"\ndelay_ms = {self.delay_ms}\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KG_", "REDIS_", "DB_", "NEO4J_"))}
        env.update({
            "KG_CONFIG": config,
            "KG_DATA_DIR": os.path.join(self.dir, "data"),
            "KG_HTTP_ADDR": "127.0.0.1:0",
            "KG_WORKERS_PER_PROVIDER": "0",
            "KG_LOG_LEVEL": "warn",
            "KG_WORKER_NODE_NAME": f"queue-bench-{os.getpid()}-{os.path.basename(self.dir)}",
            "NODE_ROLE": "all",
        })
        env.update(self.extra_env)
        self.out_path = os.path.join(self.dir, "stdout")
        self.err_path = os.path.join(self.dir, "stderr")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([self.binary, "start"], env=env, cwd=self.dir, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.out_path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("KGFLOW_LISTENING "):
                        self.port = int(line.strip().rsplit(":", 1)[1])
                        return
            if self.proc.poll() is not None:
                raise BenchError(f"node exited {self.proc.returncode} before listening: {self.stderr_tail()}")
            time.sleep(0.05)
        raise BenchError(f"node printed no KGFLOW_LISTENING line in {START_TIMEOUT:.0f} s")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stderr_tail(self, n=5):
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-n:])
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def queue_counts(node):
    """(done, dead) chunks of the bench provider, from GET /metrics."""
    status, body = http("GET", node.url("/metrics"), timeout=30)
    if status != 200:
        raise BenchError(f"GET /metrics: {status}")
    done = dead = 0
    prefix = f'kg_queue_chunks{{provider="{PROVIDER}",state='
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith(prefix + '"done"}'):
            done = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith(prefix + '"dead"}'):
            dead = int(float(line.rsplit(" ", 1)[1]))
    return done, dead


def submit(node, docs):
    """Submits `docs` three-word documents in batches; (seconds, chunks queued)."""
    chunks = 0
    bodies = []
    for start in range(0, docs, MAX_BATCH):
        lines = [json.dumps({"text": f"Document {i} arrived.", "provider": PROVIDER})
                 for i in range(start, min(docs, start + MAX_BATCH))]
        bodies.append(("\n".join(lines) + "\n").encode())
    t0 = time.monotonic()
    for body in bodies:
        status, answer = http("POST", node.url("/api/v1/tasks/batch"), body, "application/x-ndjson")
        if status != 201:
            raise BenchError(f"batch submission answered {status}: {answer[:300]!r}")
        chunks += sum(t["chunks"] for t in json.loads(answer)["tasks"])
    return time.monotonic() - t0, chunks


def drain(node, workers, chunks, deadline_s):
    """Starts `workers` processes and polls until `chunks` are done or dead; the figures."""
    status, answer = http("PUT", node.url(f"/api/v1/providers/{PROVIDER}/processes"),
                          json.dumps({"per_node": workers}).encode(), "application/json")
    if status != 200:
        raise BenchError(f"scaling to {workers} workers answered {status}: {answer[:300]!r}")
    started = time.monotonic()
    first = None  # (time, done) of the first poll that saw a chunk done
    while True:
        done, dead = queue_counts(node)
        now = time.monotonic()
        if first is None and done > 0:
            first = (now, done)
        if done + dead >= chunks:
            break
        if now - started > deadline_s:
            raise BenchError(f"drain past {deadline_s:.0f} s: {done} done, {dead} dead of {chunks}")
        time.sleep(POLL_SECONDS)
    if dead:
        raise BenchError(f"{dead} of {chunks} chunks were dead-lettered: {node.stderr_tail()}")
    span = now - first[0]
    return {"chunks": chunks, "drain_seconds": span, "counted": done - first[1],
            "chunks_per_s": (done - first[1]) / span if span > 0 else None,
            "to_first_done_s": first[0] - started}


def run_kgflow(binary, docs, workers, delay_ms, servers=None, deadline_s=600.0):
    """One run on a fresh node: the submission and drain figures."""
    extra = {}
    if servers is not None:
        db = f"kg_bench_{os.getpid()}_{next(_DATABASES)}"  # fresh per run, whoever calls
        servers.redis_cli("FLUSHALL")
        servers.create_database(db)
        extra = servers.env(db)
    with Node(binary, delay_ms, extra) as node:
        seconds, chunks = submit(node, docs)
        if chunks != docs:
            raise BenchError(f"{docs} three-word documents made {chunks} chunks, not one each")
        r = drain(node, workers, chunks, deadline_s)
        r["submit_seconds"] = seconds
        r["docs_per_s"] = docs / seconds
        return r


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def emit(name, value, unit, n, **extra):
    r = {"name": name, "value": round(value, 4), "unit": unit, "stat": "median", "n": n}
    r.update({k: round(v, 4) if isinstance(v, float) else v for k, v in extra.items()})
    print("RESULT " + json.dumps(r), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kgflow", required=True, help="the kgflow binary")
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delay-ms", type=int, default=0, help="the provider's latency per chunk")
    ap.add_argument("--distributed", action="store_true", help="Redis + MariaDB from scripts/test_servers.sh")
    ap.add_argument("--json", help="write the figures and runs to this file")
    opts = ap.parse_args()
    if opts.docs < 1 or opts.workers < 1 or opts.runs < 1 or opts.delay_ms < 0:
        ap.error("--docs, --workers and --runs must be at least 1, --delay-ms at least 0")
    if not os.access(opts.kgflow, os.X_OK):
        ap.error(f"--kgflow {opts.kgflow}: not an executable")
    mode = "distributed" if opts.distributed else "embedded"
    runs = []
    try:
        servers = Servers().__enter__() if opts.distributed else None
        try:
            for i in range(opts.runs):
                r = run_kgflow(opts.kgflow, opts.docs, opts.workers, opts.delay_ms, servers)
                runs.append(r)
                print(f"  run {i + 1}: submitted {opts.docs} documents in {r['submit_seconds']:.3f} s "
                      f"({r['docs_per_s']:,.0f}/s); {opts.workers} workers drained {r['counted']} chunks in "
                      f"{r['drain_seconds']:.3f} s ({r['chunks_per_s']:,.0f} chunks/s, first done "
                      f"{r['to_first_done_s']:.2f} s after the scale)", flush=True)
        finally:
            if servers is not None:
                servers.__exit__(None, None, None)
    except BenchError as e:
        print(f"queue_overhead: {mode}: {e}", file=sys.stderr)
        return 1
    drain_rate = median([r["chunks_per_s"] for r in runs])
    submit_rate = median([r["docs_per_s"] for r in runs])
    suffix = "" if opts.delay_ms == 0 else f"_delay{opts.delay_ms}ms"
    print(f"queue overhead ({mode}, {opts.docs} documents, {opts.workers} workers, delay {opts.delay_ms} ms, "
          f"median of {opts.runs}): drain {drain_rate:,.0f} chunks/s, batch submission {submit_rate:,.0f} "
          f"documents/s", flush=True)
    emit(f"queue_drain_{mode}{suffix}.chunks_per_s", drain_rate, "chunks/s", opts.runs, docs=opts.docs,
         workers=opts.workers, delay_ms=opts.delay_ms)
    emit(f"queue_submit_batch_{mode}.docs_per_s", submit_rate, "docs/s", opts.runs, docs=opts.docs)
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump({"mode": mode, "docs": opts.docs, "workers": opts.workers, "delay_ms": opts.delay_ms,
                       "drain_chunks_per_s": drain_rate, "submit_docs_per_s": submit_rate, "runs": runs}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
