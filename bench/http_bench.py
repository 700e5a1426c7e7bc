#!/usr/bin/env python3
"""API server benchmarks of issue 8, before and after, in one run (Python 3 stdlib only).

  http_bench.py --before BIN --after BIN [--load build/bench/http_load]
                [--runs 3] [--seconds 5] [--clients 1,16,256] [--probe-seconds 10]
                [--slow 1000,100,20] [--idle-connections 10000] [--skip rate,slow,idle]

BIN is a kgflow binary; each node is started here (`BIN start`, NODE_ROLE all, no worker
processes: KG_WORKERS_PER_PROVIDER=0, so submitted tasks pile up queued) with KG_DATA_DIR in a
temp dir and KG_HTTP_ADDR=127.0.0.1:0; its port is read from the `KGFLOW_LISTENING` line, and it
is stopped with SIGTERM by pid (SIGKILL after 30 s, which is then reported).

Measures, for both binaries:
  - requests/s of `GET /healthz` and of `POST /api/v1/tasks` (JSON, a ~2 KB text, provider
    builtin) with 1, 16 and 256 keep-alive clients, `--seconds` each, median of `--runs`; the two
    binaries run alternately, each on its own fresh node per (route, clients);
  - `/healthz` and `GET /api/v1/tasks` latency from a new connection every 100 ms, on the idle
    node and under 1000 stalled half-header connections + 100 idle keep-alive + 20 clients
    trickling a body a byte a second (`http_load slow`);
  - the node's VmRSS before and with 10,000 idle keep-alive connections open (`http_load idle`),
    whether they all stayed open, and whether the node survived and answers afterwards.

Prints a human-readable summary and `RESULT {...}` lines (bench/result.h's format; `value` is the
"after" figure, with `before`, `after` and `ratio` = after/before beside it) that
bench/figures.py --collect gathers. Exit codes: 0 done; 1 a node or the load generator failed;
2 usage.
"""
import argparse
import json
import os
import resource
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

PARAGRAPH = (
    "Mara Voss founded Helix Dynamics in 2014 after a decade of building warehouse robots for "
    "logistics firms on the northern coast. Helix Dynamics is headquartered in Port Avalon, where "
    "its first factory still assembles the gripper arms that made the company known. Tomas Reyes, "
    "who joined from Ardent Capital in 2016, became chief financial officer two years later and led "
    "the round in which Northwind Partners and the Avalon Institute of Technology took minority "
    "stakes. Ingrid Halvorsen is the chief technology officer; before Helix she ran the perception "
    "group at Kestrel Labs in Oslo. In 2021 Helix Dynamics acquired Brightline Sensors, a small "
    "lidar maker based in Tallinn, for an undisclosed sum, and moved its sensor research there. "
    "The company supplies Meridian Freight, Orca Shipping and the Port Avalon Authority, and it "
    "signed a framework agreement with the city of Tallinn for automated container handling. "
    "Engineers from both firms met every week to review gripper designs, sensor layouts and the "
    "safety cases for each new site, and the plans grew more ambitious every quarter. Amara Okafor, "
    "head of operations, said the new plant in Riga would open in 2025 and employ four hundred "
    "people. Lena Brandt chairs the board of Helix Dynamics; she previously led Nordlicht Bank's "
    "industrial lending desk in Hamburg and sits on the board of the Baltic Robotics Association. "
    "Ravi Menon, a former researcher at the Avalon Institute of Technology, founded Cobalt Vision "
    "in 2019; Helix Dynamics holds a stake in Cobalt Vision and licenses its camera software. "
    "Oskar Lind leads sales for Scandinavia from Stockholm, and Nadia Petrova runs the support "
    "centre in Riga that answers customers in six languages around the clock. Last spring Helix "
    "Dynamics opened an office in Gdansk, led by Piotr Nowak, to serve the ports of the southern "
    "Baltic, and it plans a joint venture with Orca Shipping for autonomous harbour tugs."
)


class NodeError(Exception):
    pass


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def vm_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Node:
    """A kgflow node of `binary` in its own temp data dir, stopped by pid on exit."""

    def __init__(self, binary, label):
        self.binary = binary
        self.label = label
        self.dir = tempfile.mkdtemp(prefix=f"kg-http-bench-{label}-")
        self.proc = None
        self.port = None
        self.stop_how = None  # "SIGTERM" or "SIGKILL after 30 s"
        self.exit_code = None

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__(None, None, None)  # a node that never listened is stopped and its dir removed
            raise

    def _start(self):
        env = dict(os.environ)
        env.update({
            "KG_DATA_DIR": os.path.join(self.dir, "data"),
            "KG_HTTP_ADDR": "127.0.0.1:0",
            "KG_WORKERS_PER_PROVIDER": "0",
            "KG_LOG_LEVEL": "warn",
            "KG_WORKER_NODE_NAME": f"http-bench-{self.label}-{os.getpid()}-{os.path.basename(self.dir)}",
            "NODE_ROLE": "all",
        })
        env.pop("KG_API_TOKEN", None)
        env.pop("KG_CONFIG", None)
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
                        return self
            if self.proc.poll() is not None:
                raise NodeError(f"{self.label} node exited {self.proc.returncode} before listening: "
                                f"{self.stderr_tail()}")
            time.sleep(0.05)
        raise NodeError(f"{self.label} node printed no KGFLOW_LISTENING line in {START_TIMEOUT:.0f} s")

    def stderr_tail(self, n=5):
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def healthy(self, timeout=10.0):
        """Whether GET /healthz answers 200 within `timeout`."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=timeout) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
                self.stop_how = "SIGTERM"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.stop_how = f"SIGKILL after {STOP_TIMEOUT:.0f} s"
        self.exit_code = self.proc.returncode

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def run_load(load, args, timeout):
    """Runs http_load with `args`; its JSON answer, or NodeError."""
    try:
        p = subprocess.run([load] + args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise NodeError(f"http_load {' '.join(args)} ran past {timeout:.0f} s") from e
    if not p.stdout.strip():
        raise NodeError(f"http_load {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(after, before):
    if after is None or before is None or before == 0:
        return None
    return after / before


def emit(name, before, after, unit, stat, n, **extra):
    value = after if after is not None else before
    r = {"name": name, "value": round(value, 4) if isinstance(value, float) else value, "unit": unit,
         "stat": stat, "n": n, "before": before, "after": after, "ratio": ratio(after, before)}
    for k, v in extra.items():
        r[k] = round(v, 4) if isinstance(v, float) else v
    for k in ("before", "after", "ratio"):
        if isinstance(r[k], float):
            r[k] = round(r[k], 4)
    print("RESULT " + json.dumps(r), flush=True)


def fmt(v, spec="{:,.0f}"):
    return "n/a" if v is None else spec.format(v)


# --------------------------------------------------------------------------------------------

def bench_rates(opts, sides, body_file):
    routes = [
        ("healthz", ["--method", "GET", "--path", "/healthz"]),
        ("tasks", ["--method", "POST", "--path", "/api/v1/tasks", "--body-file", body_file,
                   "--content-type", "application/json"]),
    ]
    for route, route_args in routes:
        for clients in opts.clients:
            runs = {label: [] for label, _ in sides}
            nodes = {}
            try:
                for label, binary in sides:
                    nodes[label] = Node(binary, label).__enter__()
                for _ in range(opts.runs):
                    for label, _ in sides:  # alternate, so drift on the box hits both alike
                        r = run_load(opts.load, ["rate", "--port", str(nodes[label].port), "--clients", str(clients),
                                                 "--seconds", str(opts.seconds)] + route_args,
                                     timeout=opts.seconds + 60)
                        runs[label].append(r)
            finally:
                for n in nodes.values():
                    n.__exit__(None, None, None)
            stat = {}
            for label, _ in sides:
                rs = runs[label]
                stat[label] = {
                    "rps": median([r["rps"] for r in rs]),
                    "p50_ms": median([r["latency_us"]["p50"] / 1000 if r["latency_us"]["p50"] is not None else None
                                      for r in rs]),
                    "p99_ms": median([r["latency_us"]["p99"] / 1000 if r["latency_us"]["p99"] is not None else None
                                      for r in rs]),
                    "errors": sum(r["errors"] for r in rs),
                    "reconnects": sum(r["reconnects"] for r in rs),
                    "requests": sum(r["requests"] for r in rs),
                    "status": {},
                }
                for r in rs:
                    for code, n in r["status"].items():
                        stat[label]["status"][code] = stat[label]["status"].get(code, 0) + n
            b, a = stat.get("before", {}), stat.get("after", {})
            print(f"  {route:8s} {clients:4d} clients: before {fmt(b.get('rps'))} req/s "
                  f"(p50 {fmt(b.get('p50_ms'), '{:.2f}')} ms, p99 {fmt(b.get('p99_ms'), '{:.2f}')} ms, "
                  f"{b.get('reconnects', 0)} reconnects, {b.get('errors', 0)} errors, status {b.get('status')}), "
                  f"after {fmt(a.get('rps'))} req/s (p50 {fmt(a.get('p50_ms'), '{:.2f}')} ms, "
                  f"p99 {fmt(a.get('p99_ms'), '{:.2f}')} ms, {a.get('reconnects', 0)} reconnects, "
                  f"{a.get('errors', 0)} errors, status {a.get('status')}); "
                  f"after/before {fmt(ratio(a.get('rps'), b.get('rps')), '{:.2f}')}", flush=True)
            extra = {}
            for label in ("before", "after"):
                if label in stat:
                    for k in ("p50_ms", "p99_ms", "errors", "reconnects"):
                        extra[f"{label}_{k}"] = stat[label][k]
            emit(f"http_{route}_rps_{clients}", b.get("rps"), a.get("rps"), "req/s", "median", opts.runs, **extra)


def bench_slow(opts, sides):
    stall, idle, trickle = opts.slow
    out = {}
    for label, binary in sides:
        with Node(binary, label) as node:
            r = run_load(opts.load, ["slow", "--port", str(node.port), "--stall", str(stall), "--idle", str(idle),
                                     "--trickle", str(trickle), "--probe-seconds", str(opts.probe_seconds),
                                     "--probe-path", "/healthz", "--probe-path", "/api/v1/tasks"],
                         timeout=2 * opts.probe_seconds + 60)
            r["survived"] = node.alive()
            r["healthy_after"] = node.healthy() if node.alive() else False
            node.stop()
            r["stop"] = node.stop_how
        out[label] = r
        for path in ("/healthz", "/api/v1/tasks"):
            i, u = r["idle_server"][path], r["under_load"][path]
            print(f"  {label}: {path} idle p50 {fmt(i['p50_ms'], '{:.2f}')} ms p99 {fmt(i['p99_ms'], '{:.2f}')} ms; "
                  f"under {stall} stalled + {idle} idle + {trickle} trickling: p50 {fmt(u['p50_ms'], '{:.2f}')} ms "
                  f"p99 {fmt(u['p99_ms'], '{:.2f}')} ms max {fmt(u['max_ms'], '{:.2f}')} ms, "
                  f"{u['timeouts']} of {u['count']} timed out (10 s), {u['failures']} failed", flush=True)
        for cls, c in r["slow_connections"].items():
            print(f"  {label}: {cls}: {c['connects']} connects, {c['closed_by_server']} closed by the server "
                  f"(median {fmt(c['closed_after_s_median'], '{:.1f}')} s, "
                  f"max {fmt(c['closed_after_s_max'], '{:.1f}')} s "
                  f"after their last byte), answers {c['status']}, {c['open_at_end']} open at the end", flush=True)
        print(f"  {label}: node survived: {r['survived']}, answers /healthz after: {r['healthy_after']}, "
              f"stopped by {r['stop']}", flush=True)
    b, a = out.get("before"), out.get("after")

    def get(r, phase, path, key):
        return r[phase][path][key] if r else None

    for path, short in (("/healthz", "healthz"), ("/api/v1/tasks", "tasks_list")):
        for q in ("p50", "p99"):
            bi, ai = get(b, "idle_server", path, f"{q}_ms"), get(a, "idle_server", path, f"{q}_ms")
            bl, al = get(b, "under_load", path, f"{q}_ms"), get(a, "under_load", path, f"{q}_ms")
            n = get(a or b, "under_load", path, "count")
            emit(f"http_{short}_slow_load_{q}_ms", bl, al, "ms", q, n,
                 before_idle=bi, after_idle=ai, before_load_over_idle=ratio(bl, bi), after_load_over_idle=ratio(al, ai),
                 before_timeouts=get(b, "under_load", path, "timeouts"),
                 after_timeouts=get(a, "under_load", path, "timeouts"))
    for cls in ("stall", "idle", "trickle"):
        bc = b["slow_connections"][cls] if b else None
        ac = a["slow_connections"][cls] if a else None
        emit(f"http_slow_{cls}_closed_by_server", bc and bc["closed_by_server"], ac and ac["closed_by_server"],
             "connections", "count", (ac or bc)["connects"],
             before_close_after_s_median=bc and bc["closed_after_s_median"],
             after_close_after_s_median=ac and ac["closed_after_s_median"],
             before_close_after_s_max=bc and bc["closed_after_s_max"],
             after_close_after_s_max=ac and ac["closed_after_s_max"])


def bench_idle(opts, sides):
    n = opts.idle_connections
    out = {}
    for label, binary in sides:
        with Node(binary, label) as node:
            before_kb = vm_rss_kb(node.proc.pid)
            p = subprocess.Popen([opts.load, "idle", "--port", str(node.port), "--connections", str(n),
                                  "--hold-seconds", "3", "--setup-seconds", "15"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            with_kb = None
            held = False
            sel = selectors.DefaultSelector()
            sel.register(p.stderr, selectors.EVENT_READ)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not held:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                line = p.stderr.readline()
                if not line:
                    break
                if line.startswith("http_load: holding"):
                    held = True
            sel.close()
            if held:  # the connections are open now, for the next 3 s: take the highest of a few reads
                samples = []
                end = time.monotonic() + 2.0
                while time.monotonic() < end:
                    kb = vm_rss_kb(node.proc.pid)
                    if kb is not None:
                        samples.append(kb)
                    time.sleep(0.25)
                with_kb = max(samples) if samples else None
            try:
                stdout, stderr = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                stdout, stderr = p.communicate()
            if not stdout.strip():
                raise NodeError(f"http_load idle exited {p.returncode}: {stderr.strip()}")
            r = json.loads(stdout)
            r["rss_before_mb"] = before_kb / 1024 if before_kb is not None else None
            r["rss_with_mb"] = with_kb / 1024 if with_kb is not None else None
            r["survived"] = node.alive()
            r["healthy_after"] = node.healthy() if node.alive() else False
            node.stop()
            r["stop"] = node.stop_how
            r["exit_code"] = node.exit_code
        out[label] = r
        print(f"  {label}: {n} idle connections: {r['connected']} connected, {r['answered']} answered their GET "
              f"within {r['setup_seconds']:.1f} s, {r['still_open']} still open after {r['hold_seconds']:.0f} s more; "
              f"RSS {fmt(r['rss_before_mb'], '{:.1f}')} MB before, {fmt(r['rss_with_mb'], '{:.1f}')} MB with them; "
              f"node survived: {r['survived']}, answers after: {r['healthy_after']}, stopped by {r['stop']} "
              f"(exit {r['exit_code']})", flush=True)
    b, a = out.get("before"), out.get("after")

    def get(r, key):
        return r[key] if r else None

    def per_conn_kb(r):
        if not r or r["rss_with_mb"] is None or r["rss_before_mb"] is None or not r["still_open"]:
            return None
        return (r["rss_with_mb"] - r["rss_before_mb"]) * 1024 / r["still_open"]

    emit(f"http_idle_{n}_rss_mb", get(b, "rss_with_mb"), get(a, "rss_with_mb"), "MB", "sample", 1,
         before_rss_idle_mb=get(b, "rss_before_mb"), after_rss_idle_mb=get(a, "rss_before_mb"),
         before_answered=get(b, "answered"), after_answered=get(a, "answered"),
         before_still_open=get(b, "still_open"), after_still_open=get(a, "still_open"),
         before_kb_per_connection=per_conn_kb(b), after_kb_per_connection=per_conn_kb(a),
         before_survived=get(b, "survived"), after_survived=get(a, "survived"),
         before_healthy_after=get(b, "healthy_after"), after_healthy_after=get(a, "healthy_after"))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="kgflow binary before (the cpp-httplib server)")
    ap.add_argument("--after", help="kgflow binary after")
    ap.add_argument("--load", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                                   "bench", "http_load"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--clients", default="1,16,256")
    ap.add_argument("--probe-seconds", type=int, default=10)
    ap.add_argument("--slow", default="1000,100,20", help="stalled,idle,trickling connections")
    ap.add_argument("--idle-connections", type=int, default=10000)
    ap.add_argument("--skip", default="", help="comma-separated: rate, slow, idle")
    try:
        opts = ap.parse_args(argv[1:])
    except SystemExit as e:
        return 2 if e.code else 0

    def usage(msg):
        print(f"http_bench: {msg}", file=sys.stderr)
        return 2

    # Absolute: each node runs in its own temp dir.
    sides = [(label, os.path.abspath(path)) for label, path in (("before", opts.before), ("after", opts.after))
             if path]
    opts.load = os.path.abspath(opts.load)
    if not sides:
        return usage("give --before and/or --after (kgflow binaries)")
    for label, path in sides + [("load", opts.load)]:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return usage(f"--{label} {path}: not an executable file")
    try:
        opts.clients = [int(c) for c in opts.clients.split(",")]
        opts.slow = [int(c) for c in opts.slow.split(",")]
    except ValueError:
        return usage("--clients and --slow take comma-separated whole numbers")
    if len(opts.slow) != 3 or min(opts.slow + opts.clients) < 0 or min(opts.runs, opts.seconds, opts.probe_seconds) < 1:
        return usage("--slow takes three counts; --runs, --seconds and --probe-seconds at least 1")
    skip = {s for s in opts.skip.split(",") if s}
    if skip - {"rate", "slow", "idle"}:
        return usage(f"--skip takes rate, slow, idle, not {','.join(sorted(skip - {'rate', 'slow', 'idle'}))}")
    raise_file_limit()

    print(f"http_bench: {', '.join(f'{label} = {path}' for label, path in sides)}; load = {opts.load}", flush=True)
    tmp = tempfile.mkdtemp(prefix="kg-http-bench-")
    try:
        body_file = os.path.join(tmp, "task.json")
        with open(body_file, "w", encoding="utf-8") as f:
            json.dump({"text": PARAGRAPH, "provider": "builtin", "title": "http bench"}, f)
        if "rate" not in skip:
            print(f"requests/s, {opts.seconds} s per run, median of {opts.runs} "
                  f"(POST /api/v1/tasks with a {len(PARAGRAPH)}-character text):", flush=True)
            bench_rates(opts, sides, body_file)
        if "slow" not in skip:
            print("latency of a new connection's GET every 100 ms, idle node vs slow clients:", flush=True)
            bench_slow(opts, sides)
        if "idle" not in skip:
            print(f"memory with {opts.idle_connections} idle keep-alive connections:", flush=True)
            bench_idle(opts, sides)
    except NodeError as e:
        print(f"http_bench: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
