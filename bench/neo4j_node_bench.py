#!/usr/bin/env python3
"""Issue 10's node figures on a private Neo4j 5.26 (scripts/test_servers.sh start neo4j):

  connections  the most Bolt connections one node holds to Neo4j at full load (sampled every 20 ms
               from /proc/net/tcp: established sockets whose remote port is Neo4j's), against its
               budget (processes x KG_NEO4J_POOL_SIZE), for pool sizes 1, 2 and 4, with 3 worker
               processes x 8 chunks at once and the builtin extractor (no provider delay: the graph
               is the bottleneck).
  throughput   chunks/s merged into Neo4j by that node, from the first submission (one batch request)
               to the last chunk in the graph; and the same node on the embedded SQLite graph.

Usage: bench/neo4j_node_bench.py --kgflow build/kgflow [--runs 3] [--docs 600] [--json OUT]
Prints RESULT lines (bench/figures.py --collect) and a JSON summary. The server and the nodes are
stopped by pid at the end; temp dirs are removed.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import check_no_failed_tasks, free_port, get, post, stop_group, wait_for  # noqa: E402

SERVERS = os.path.join(HERE, "..", "scripts", "test_servers.sh")
WORKERS = 3
SLOTS = 8


def connections_to(port):
    """Established client sockets to `port`, by local address (a table read while sockets come
    and go may list one twice)."""
    seen = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == "01" and int(parts[2].rsplit(":", 1)[1], 16) == port:
                    seen.add(parts[1])
    return len(seen)


PEOPLE = ["Alice Moreau", "Bruno Keller", "Chen Wei", "Dana Okafor", "Emil Sato", "Farah Haddad"]
ORGS = ["Meridian Analytics", "Helix Dynamics", "Linden Institute", "Aurora Labs"]
CITIES = ["Lisbon", "Oslo", "Nairobi", "Osaka", "Quito"]


def document(i):
    p, o, c = PEOPLE[i % 6], ORGS[i % 4], CITIES[(i // 6) % 5]
    return (f"{p} joined {o} in {c} in {1990 + i % 30}. {o} is based in {c}. {p} founded {ORGS[(i + 1) % 4]} "
            f"with {PEOPLE[(i + 2) % 6]}. Report number {i} was filed by {p}.")


def run_node(kgflow, workdir, env_extra, docs, neo4j_port):
    """Chunks/s and the most Bolt connections seen while one node merges `docs` documents."""
    port = free_port()
    data = tempfile.mkdtemp(dir=workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KG_") and not k.startswith("NEO4J_")}
    env.update(KG_DATA_DIR=data, KG_HTTP_ADDR=f"127.0.0.1:{port}", KG_LOG_LEVEL="warn",
               KG_WORKERS_PER_PROVIDER=str(WORKERS), KG_MAX_TOTAL_PROCESSES=str(WORKERS),
               KG_CONCURRENCY_PER_PROCESS=str(SLOTS))
    env.update(env_extra)
    log = open(os.path.join(data, "node.log"), "w")
    p = subprocess.Popen([kgflow, "start"], env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for(lambda: get(port, "/readyz") is not None, 90, "the node ready")
        most, stop = [0], threading.Event()

        def sample():
            while not stop.is_set():
                if neo4j_port:
                    most[0] = max(most[0], connections_to(neo4j_port))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.monotonic()
        post(port, "/api/v1/tasks/batch", [{"text": document(i), "title": f"d{i}"} for i in range(docs)])
        wait_for(lambda: get(port, "/api/v1/graph/stats")["chunks"] >= docs, 900, "every chunk merged")
        rate = docs / (time.monotonic() - t0)
        stop.set()
        sampler.join()
        check_no_failed_tasks(port)
        return rate, most[0]
    finally:
        stop_group(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kgflow", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--json")
    a = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="kg-neo4j-node-bench-")
    out = {"machine": f"{os.cpu_count()} cores", "runs": a.runs, "docs": a.docs, "workers": WORKERS, "slots": SLOTS}
    try:
        rates = [run_node(a.kgflow, workdir, {}, a.docs, 0)[0] for _ in range(a.runs)]
        out["embedded_chunks_per_s"] = statistics.median(rates)
        print(f"RESULT neo4j_node_embedded_chunks_per_s={statistics.median(rates):.1f}  # runs {[round(x) for x in rates]}")
        for pool in (1, 2, 4):
            rates, most = [], []
            for r in range(a.runs):
                # A server of its own per run: every run starts from an empty graph.
                sdir = os.path.join(workdir, f"neo4j-{pool}-{r}")
                port, pid = subprocess.check_output([SERVERS, "start", "neo4j", sdir], text=True).split()
                try:
                    env = {"NEO4J_URI": f"bolt://127.0.0.1:{port}", "NEO4J_USER": "neo4j",
                           "NEO4J_PASSWORD": "kgflow-test", "KG_NEO4J_POOL_SIZE": str(pool)}
                    rate, seen = run_node(a.kgflow, workdir, env, a.docs, int(port))
                finally:
                    subprocess.call([SERVERS, "stop", pid])
                rates.append(rate)
                most.append(seen)
            budget = (1 + WORKERS) * pool
            out[f"pool_{pool}"] = {"chunks_per_s": statistics.median(rates), "runs": rates,
                                   "most_connections": max(most), "budget": budget}
            print(f"RESULT neo4j_node_pool{pool}_chunks_per_s={statistics.median(rates):.1f}  "
                  f"# runs {[round(x) for x in rates]}")
            print(f"RESULT neo4j_node_pool{pool}_most_connections={max(most)}  # budget {budget} "
                  f"(1 API + {WORKERS} worker processes x pool {pool}); runs {most}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
