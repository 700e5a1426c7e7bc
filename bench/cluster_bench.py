#!/usr/bin/env python3
"""Cluster figures of issue 9, on a private redis-server + mariadbd (scripts/test_servers.sh):

  node-loss  time from SIGKILL of a worker node (its whole process tree) to its in-flight chunks
             running on another node, at default settings (KG_LEASE_SECONDS, KG_HEARTBEAT_SECONDS
             unset). Measured from outside: the moment the surviving node's own /api/v1/workers
             shows its processes busy with them (it is idle before the kill: every chunk is leased
             by the victim).
  scale-out  chunks/s with a fixed-latency provider on 1, 2 and 3 worker nodes of 1 process x 4 slots
             (ratio to one), from the first submission to the last chunk merged.

Usage: bench/cluster_bench.py --kgflow build/kgflow [--runs 3] [--json OUT]
Prints RESULT lines (bench/figures.py --collect) and a JSON summary. Servers and nodes are stopped
by pid at the end; temp dirs are removed.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import free_port, get, post, wait_for  # noqa: E402

SERVERS = os.path.join(HERE, "..", "scripts", "test_servers.sh")


class Cluster:
    def __init__(self, kgflow, delay_ms, db_name):
        self.kgflow = kgflow
        self.dir = tempfile.mkdtemp(prefix="kg-cluster-bench-")
        self.procs = []
        out = subprocess.check_output([SERVERS, "start", "redis", self.dir + "/redis"], text=True).split()
        self.redis_port, self.redis_pid = int(out[0]), int(out[1])
        out = subprocess.check_output([SERVERS, "start", "mariadb", self.dir + "/mariadb"], text=True).split()
        self.db_port, self.db_pid = int(out[0]), int(out[1])
        with open(self.dir + "/kg.toml", "w") as f:
            f.write(f"[providers.fixed]\ndelay_ms = {delay_ms}\n")
        self.db_name = db_name

    def env(self, role, name, extra):
        e = {k: v for k, v in os.environ.items() if not k.startswith("KG_") and k != "NODE_ROLE"}
        e.update(NODE_ROLE=role, KG_WORKER_NODE_NAME=name, REDIS_HOST="127.0.0.1", REDIS_PORT=str(self.redis_port),
                 DB_HOST="127.0.0.1", DB_PORT=str(self.db_port), DB_USER="kgflow", DB_PASSWORD="kgflow-test",
                 DB_NAME=self.db_name, KG_CONFIG=self.dir + "/kg.toml", KG_LOG_LEVEL="warn",
                 KG_DATA_DIR=f"{self.dir}/{name}")
        e.update(extra)
        return e

    def start(self, role, name, **extra):
        port = free_port()
        extra = {k: str(v) for k, v in extra.items()}
        extra["KG_HTTP_ADDR" if role != "worker" else "KG_HEALTH_ADDR"] = f"127.0.0.1:{port}"
        log = open(f"{self.dir}/{name}.log", "w")
        p = subprocess.Popen([self.kgflow, "start"], env=self.env(role, name, extra), stdout=log, stderr=log,
                             start_new_session=True)
        self.procs.append(p)
        wait_for(lambda: get(port, "/readyz") is not None, 60, f"{name} ready")
        return p, port

    def kill_tree(self, p):
        kids = []
        try:
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            pass
        os.killpg(p.pid, signal.SIGKILL)
        for k in kids:
            for target in (-k, k):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError:
                    pass
        p.wait()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        subprocess.call([SERVERS, "stop", str(self.redis_pid)])
        subprocess.call([SERVERS, "stop", str(self.db_pid)])
        shutil.rmtree(self.dir, ignore_errors=True)


def busy(port):
    """Processes of the node at `port` that are busy, from its own live table."""
    w = get(port, "/api/v1/workers")
    me = [n for n in w["nodes"] if n.get("heartbeat_age_ms", 1) == 0]
    return sum(1 for n in me for p in n["processes"] if p.get("state") == "busy")


def node_loss(kgflow, run):
    """Seconds from SIGKILL of the node holding every chunk to the other node running them."""
    c = Cluster(kgflow, delay_ms=60000, db_name=f"kg_loss_{run}")
    try:
        _, web = c.start("web", "web")
        victim, _ = c.start("worker", "victim", KG_WORKERS_PER_PROVIDER=1, KG_CONCURRENCY_PER_PROCESS=4)
        docs = [f"Node loss document {i} names Ada Lovelace{i} in London." for i in range(4)]
        ids = [post(web, "/api/v1/tasks", {"text": t, "provider": "fixed"})["id"] for t in docs]
        wait_for(lambda: all(get(web, f"/api/v1/tasks/{i}")["chunks_running"] == 1 for i in ids), 30,
                 "all chunks leased by the victim")
        _, survivor = c.start("worker", "survivor", KG_WORKERS_PER_PROVIDER=1, KG_CONCURRENCY_PER_PROCESS=4)
        if busy(survivor) != 0:
            raise RuntimeError("the survivor took work before the kill")
        t0 = time.monotonic()
        c.kill_tree(victim)
        wait_for(lambda: busy(survivor) >= 1, 120, "the survivor running the dead node's chunks")
        return time.monotonic() - t0
    finally:
        c.close()


def scale_out(kgflow, nodes, docs, delay_ms, run):
    """Chunks per second through `nodes` worker nodes (1 process x 4 slots each)."""
    c = Cluster(kgflow, delay_ms=delay_ms, db_name=f"kg_scale_{nodes}_{run}")
    try:
        _, web = c.start("web", "web")
        for n in range(nodes):
            c.start("worker", f"w{n}", KG_WORKERS_PER_PROVIDER=1, KG_CONCURRENCY_PER_PROCESS=4)
        t0 = time.monotonic()  # workers start on the first document: the clock starts before it
        for i in range(docs):
            post(web, "/api/v1/tasks", {"text": f"Scale document {i} about Grace Hopper{i} in Boston.", "provider": "fixed"})
        wait_for(lambda: get(web, "/api/v1/graph/stats")["chunks"] >= docs, 600, "every chunk merged")
        return docs / (time.monotonic() - t0)
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kgflow", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--delay-ms", type=int, default=200)
    ap.add_argument("--json")
    a = ap.parse_args()
    out = {"machine": f"{os.cpu_count()} cores", "runs": a.runs}
    loss = [node_loss(a.kgflow, r) for r in range(a.runs)]
    out["node_loss_seconds"] = {"median": statistics.median(loss), "runs": loss}
    print(f"RESULT node_loss_seconds={statistics.median(loss):.2f}  # runs {[round(x, 2) for x in loss]}")
    rates = {}
    for nodes in (1, 2, 3):
        rs = [scale_out(a.kgflow, nodes, a.docs, a.delay_ms, r) for r in range(a.runs)]
        rates[nodes] = statistics.median(rs)
        print(f"RESULT scale_out_{nodes}_nodes_chunks_per_s={rates[nodes]:.1f}  # runs {[round(x, 1) for x in rs]}")
    out["scale_out_chunks_per_s"] = rates
    out["scale_out_ratio"] = {n: rates[n] / rates[1] for n in rates}
    for n in (2, 3):
        print(f"RESULT scale_out_{n}_nodes_ratio={rates[n] / rates[1]:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
