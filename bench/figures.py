#!/usr/bin/env python3
"""Bench figures: collect a run's RESULT lines into JSON, and render the README table from it.

  figures.py --collect RUN_OUTPUT --commit SHA      > results/<date>-<sha>.json
  figures.py RESULTS.json --table                   print the README performance table
  figures.py RESULTS.json --write README.md         replace the table between the markers
  figures.py RESULTS.json --check README.md         exit 1 if the README quotes other figures

The README's table lives between `<!-- bench:begin -->` and `<!-- bench:end -->`.
"""
import json
import os
import platform
import re
import sys
from datetime import datetime, timezone

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def collect(path, commit):
    results = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("RESULT "):
                r = json.loads(line[len("RESULT "):])
                results[r.pop("name")] = r
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit,
        "machine": {"kernel": platform.release(), "cores": os.cpu_count(), "memory_gib": round(mem_kb / 1048576),
                    "cpu": model},
        "results": results,
    }


def table(doc):
    r = doc["results"]

    def v(name, fmt="{:.1f}"):
        return fmt.format(r[name]["value"]) if name in r else "n/a"

    def tail(prefix):
        if prefix + ".p99" in r:
            return f"{v(prefix + '.p99')} ms p99 (n={r[prefix + '.p99']['n']})"
        if prefix + ".max" in r:
            return f"{v(prefix + '.max')} ms max (n={r[prefix + '.max']['n']})"
        return "n/a"

    m = doc["machine"]
    rows = [
        ("SIGKILL of a worker → replacement ready to lease",
         f"{v('respawn_ms.median')} ms median, {tail('respawn_ms')}", "50–140 ms, at times 1–5 s"),
        ("SIGKILL of a worker → the chunk it held running again",
         f"{v('rerun_ms.median')} ms median, {tail('rerun_ms')}", "16–24 s with `acks_late`, lost by default"),
        ("idle worker memory (PSS)",
         f"{v('idle_worker_of_1.pss_mb')} MB alone, {v('idle_worker_of_4.pss_mb')} MB in a node of 4, "
         f"{v('idle_worker_of_10.pss_mb')} MB of 10 ({v('idle_worker_of_10.private_dirty_mb')} MB private)",
         "23 MB PSS, 43 MB RSS per prefork child"),
        ("idle node with 10 workers", f"{v('idle_node_10_workers.cpu_percent', '{:.2f}')} % of one core", "—"),
        ("crash loop (default quarantine)",
         f"{v('crashloop_quarantine_300s.spawns', '{:.0f}')} "
         f"{r.get('crashloop_quarantine_300s.spawns', {}).get('unit', 'spawns')}, then quarantine", "respawns without limit"),
        ("builtin provider, 2 workers, ~600-character chunks",
         f"{v('throughput_builtin_2_workers.chunks_per_min', '{:,.0f}')} chunks/min", "—"),
        (f"graph export of {v('export.relations', '{:,.0f}')} relations, node peak RSS above idle",
         f"JSON {v('export_json.peak_over_idle_mb')} MB, GraphML {v('export_graphml.peak_over_idle_mb')} MB", "—"),
    ]
    lines = [f"From `bench/results/{doc.get('file', 'latest.json')}` ({doc['date'][:10]}, commit {doc['commit']}, "
             f"{m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}):", "",
             "| measure | kgflow | Celery 5.2 |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def splice(readme, body):
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise SystemExit(f"no {BEGIN} ... {END} block in the README")
    return pattern.sub(lambda _: f"{BEGIN}\n{body}\n{END}", readme)


def main(argv):
    if len(argv) >= 2 and argv[1] == "--collect":
        commit = argv[argv.index("--commit") + 1] if "--commit" in argv else "unknown"
        json.dump(collect(argv[2], commit), sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    doc.setdefault("file", os.path.basename(argv[1]))
    body = table(doc)
    if argv[2] == "--table":
        print(body)
        return 0
    with open(argv[3], encoding="utf-8") as f:
        readme = f.read()
    want = splice(readme, body)
    if argv[2] == "--write":
        with open(argv[3], "w", encoding="utf-8") as f:
            f.write(want)
        return 0
    if argv[2] == "--check":
        if want != readme:
            print(f"{argv[3]}: the performance table does not quote {argv[1]}; run "
                  f"`bench/figures.py {argv[1]} --write {argv[3]}`", file=sys.stderr)
            return 1
        print(f"{argv[3]} quotes {argv[1]}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
