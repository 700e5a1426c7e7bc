#!/usr/bin/env python3
"""Issue 11's latency-bound figures: one node against the fake OpenAI-compatible server
(tests/testing/fake_llm.py) answering every request after a fixed latency (6 s by default).

  throughput   chunks/min from the submission (one batch request of one-chunk documents) to the
               last chunk done, against the ideal: processes x in-flight per process x 60 / latency.
               The ideal counts whole waves: N chunks take ceil(N / in-flight) latencies at best.
  memory       the worker processes' PSS at full load minus their PSS idle, per call in flight.
  cpu          CPU seconds (user + system) the node's processes spent per 1,000 chunks.
  scaling      the same throughput with 10, 50 and 100 calls in flight per process.

Usage: bench/llm_bench.py --kgflow build/kgflow [--runs 3] [--latency-ms 6000] [--processes 2]
       [--in-flight 100] [--waves 5] [--json OUT]
Prints RESULT lines (bench/figures.py --collect) and a JSON summary. The fake server and the node are
stopped by pid at the end; temp dirs are removed.
"""
import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import check_no_failed_tasks, free_port, get, post, stop_group, wait_for  # noqa: E402

FAKE = os.path.join(HERE, "..", "tests", "testing", "fake_llm.py")


def start_fake(workdir, latency_ms):
    port_file = os.path.join(workdir, "fake.port")
    p = subprocess.Popen([sys.executable, FAKE, "--port", "0", "--port-file", port_file, "--latency-ms",
                          str(latency_ms), "--max-seconds", "3600"], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(workdir, "fake.log"), "w"))
    wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip() != "", 20, "the fake server")
    return p, int(open(port_file).read().strip())


def children(pid):
    """Child pids of every thread of `pid` (the supervisor thread spawns the workers)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def result(name, value, unit, n, note):
    """A RESULT line in bench/result.h's format (bench/figures.py --collect reads them)."""
    print("RESULT " + json.dumps({"name": name, "value": round(value, 4), "unit": unit, "stat": "median", "n": n,
                                  "note": note}), flush=True)


def document(i):
    return f"Alice Moreau met Bruno Keller in Lisbon on day {i}."


def run_node(kgflow, workdir, fake_port, processes, in_flight, chunks):
    port = free_port()
    data = tempfile.mkdtemp(dir=workdir)
    cfg = os.path.join(data, "kg.toml")
    with open(cfg, "w") as f:
        f.write(f'[providers.fake]\nkind = "openai"\nbase_url = "http://127.0.0.1:{fake_port}/v1"\n'
                f'model = "fake"\napi_key_env = "FAKE_LLM_KEY"\ntimeout_s = 120\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("KG_")}
    env.update(KG_CONFIG=cfg, KG_PROVIDERS="fake", FAKE_LLM_KEY="bench-key", KG_DATA_DIR=data,
               KG_HTTP_ADDR=f"127.0.0.1:{port}", KG_LOG_LEVEL="warn", KG_WORKERS_PER_PROVIDER=str(processes),
               KG_MAX_TOTAL_PROCESSES=str(processes), KG_CONCURRENCY_PER_PROCESS=str(in_flight),
               KG_LEASE_SECONDS="30")
    log = open(os.path.join(data, "node.log"), "w")
    p = subprocess.Popen([kgflow, "start"], env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for(lambda: get(port, "/readyz") is not None, 60, "the node ready")
        wait_for(lambda: len(children(p.pid)) >= processes, 30, "the worker processes")
        workers = children(p.pid)
        time.sleep(1)  # let the workers finish starting before the idle sample
        idle_pss = sum(pss_kb(w) for w in workers)
        cpu0 = cpu_s(p.pid) + sum(cpu_s(w) for w in workers)
        peak, stop = [0], threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], sum(pss_kb(w) for w in workers))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.monotonic()
        post(port, "/api/v1/tasks/batch", [{"text": document(i), "title": f"d{i}"} for i in range(chunks)])
        wait_for(lambda: get(port, "/api/v1/graph/stats")["chunks"] >= chunks, 1800, "every chunk merged")
        elapsed = time.monotonic() - t0
        stop.set()
        sampler.join()
        cpu1 = cpu_s(p.pid) + sum(cpu_s(w) for w in workers)
        check_no_failed_tasks(port)
        return {"seconds": elapsed, "chunks_per_min": chunks * 60 / elapsed,
                "pss_per_call_kb": (peak[0] - idle_pss) / (processes * in_flight),
                "idle_pss_kb": idle_pss, "peak_pss_kb": peak[0],
                "cpu_s_per_1000_chunks": (cpu1 - cpu0) * 1000 / chunks}
    finally:
        stop_group(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kgflow", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-ms", type=int, default=6000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--in-flight", type=int, default=100)
    ap.add_argument("--waves", type=int, default=5, help="chunks = waves x processes x in-flight")
    ap.add_argument("--scaling", default="10,50,100", help="in-flight values for the scaling runs ('' = none)")
    ap.add_argument("--json")
    a = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="kg-llm-bench-")
    fake, fake_port = start_fake(workdir, a.latency_ms)
    lat = a.latency_ms / 1000
    out = {"machine": f"{os.cpu_count()} cores", "latency_ms": a.latency_ms, "processes": a.processes, "runs": a.runs}
    try:
        def measure(in_flight):
            chunks = a.waves * a.processes * in_flight
            ideal_per_min = a.processes * in_flight * 60 / lat
            # Whole waves: at best the last chunk is done `waves` latencies after the submission.
            ideal_seconds = math.ceil(chunks / (a.processes * in_flight)) * lat
            runs = [run_node(a.kgflow, workdir, fake_port, a.processes, in_flight, chunks) for _ in range(a.runs)]
            rate = statistics.median(r["chunks_per_min"] for r in runs)
            ratio = statistics.median(ideal_seconds / r["seconds"] for r in runs)
            return {"chunks": chunks, "ideal_chunks_per_min": ideal_per_min, "chunks_per_min": rate,
                    "ratio_to_ideal": ratio, "runs": runs,
                    "pss_per_call_kb": statistics.median(r["pss_per_call_kb"] for r in runs),
                    "cpu_s_per_1000_chunks": statistics.median(r["cpu_s_per_1000_chunks"] for r in runs)}

        main_run = measure(a.in_flight)
        out["main"] = main_run
        tag = f"{a.processes}x{a.in_flight}"
        result("llm_latency_bound.chunks_per_min", main_run["chunks_per_min"], "chunks/min", a.runs,
               f"{tag} in flight, {a.latency_ms} ms per request; ideal {main_run['ideal_chunks_per_min']:.0f}")
        result("llm_latency_bound.ratio_to_ideal", main_run["ratio_to_ideal"], "ratio", a.runs, "goal >= 0.9")
        result("llm_latency_bound.pss_per_call_kb", main_run["pss_per_call_kb"], "KB", a.runs,
               "worker PSS at full load minus idle, per call in flight; goal <= 200 KB")
        result("llm_latency_bound.cpu_s_per_1000_chunks", main_run["cpu_s_per_1000_chunks"], "s", a.runs,
               "node + workers, user + system")
        out["scaling"] = {}
        for n in [int(x) for x in a.scaling.split(",") if x]:
            if n == a.in_flight:
                r = main_run
            else:
                r = measure(n)
            out["scaling"][n] = {k: r[k] for k in ("chunks_per_min", "ideal_chunks_per_min", "ratio_to_ideal")}
            result(f"llm_scaling_{n}_in_flight.chunks_per_min", r["chunks_per_min"], "chunks/min", a.runs,
                   f"ideal {r['ideal_chunks_per_min']:.0f}, ratio {r['ratio_to_ideal']:.3f}")
    finally:
        fake.send_signal(signal.SIGTERM)
        try:
            fake.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fake.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
