#!/usr/bin/env python3
# Verifies that no PromQL expression of the Grafana dashboard (deploy/grafana/kgflow-dashboard.json)
# or of the alert rules (deploy/prometheus/alerts.yml) adds up a cluster-wide series across nodes.
# Cluster-wide families (docs/operations.md, "Metrics") come from the reporter node only, but two
# nodes export them for a while (a change of reporter, the registry unreadable): summed, or shown
# raw, they count twice. Every use of one must be deduplicated by the first aggregation around it
# that drops the `instance` label: max or min (the same value from every reporter), or group. An
# aggregation that keeps `instance` (one reporter at a time) may come before it; absent() is allowed
# (it asks only whether any series exists).
# The expressions are read with a small scanner (string literals blanked, parentheses matched), not
# a PromQL parser: enough for the forms these files use; an unknown form fails rather than passes.
# Usage: cluster_series_check.py SOURCE_DIR
import json
import os
import re
import sys

CLUSTER_FAMILIES = ["kg_queue_chunks", "kg_node_heartbeat_age_seconds", "kg_node_up", "kg_graph_nodes",
                    "kg_graph_relations"]
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk",
                "quantile", "count_values", "limitk", "limit_ratio"}
DEDUPLICATING = {"max", "min", "group"}
PRESENCE = {"absent", "absent_over_time"}


def blank_strings(expr):
    """The expression with every string literal's content replaced by spaces (same offsets)."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', lambda m: m.group(0)[0] + " " *
                  (len(m.group(0)) - 2) + m.group(0)[-1], expr)


def matching_close(s, open_at):
    depth = 0
    for i in range(open_at, len(s)):
        if s[i] == "(":
            depth += 1
        elif s[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def matching_open(s, close_at):
    depth = 0
    for i in range(close_at, -1, -1):
        if s[i] == ")":
            depth += 1
        elif s[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    return -1


def enclosing_open(s, pos):
    """The '(' of the innermost parentheses around pos, or -1."""
    depth = 0
    for i in range(pos - 1, -1, -1):
        if s[i] == ")":
            depth += 1
        elif s[i] == "(":
            if depth == 0:
                return i
            depth -= 1
    return -1


def word_before(s, end):
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", s[:end])
    return (m.group(1), m.start(1)) if m else (None, end)


def labels(clause):
    return {x.strip() for x in clause.split(",") if x.strip()}


def verdict(s, pos):
    """None if the series at pos is deduplicated, else why not."""
    while True:
        open_at = enclosing_open(s, pos)
        if open_at < 0:
            return "not aggregated (each reporting node shows its own copy)"
        before = s[:open_at].rstrip()
        name, name_at = word_before(s, len(before))
        grouping = None  # (by|without, labels)
        if before.endswith(")"):
            # agg by (labels) (...)?
            clause_open = matching_open(s, len(before) - 1)
            kw, kw_at = word_before(s, clause_open)
            agg, agg_at = word_before(s, kw_at) if kw in ("by", "without") else (None, kw_at)
            if agg in AGGREGATIONS:
                name, name_at, grouping = agg, agg_at, (kw, labels(s[clause_open + 1:len(before) - 1]))
            else:
                name, name_at = None, open_at  # on (...) / ignoring (...) (...): plain parentheses
        elif name in AGGREGATIONS:
            # agg (...) by (labels)?
            close = matching_close(s, open_at)
            m = re.match(r"\s*(by|without)\s*\(([^()]*)\)", s[close + 1:])
            if m:
                grouping = (m.group(1), labels(m.group(2)))
        if name in PRESENCE:
            return None
        if name in AGGREGATIONS:
            keeps_instance = grouping is not None and (
                (grouping[0] == "by" and "instance" in grouping[1]) or
                (grouping[0] == "without" and "instance" not in grouping[1]))
            if not keeps_instance:
                if name in DEDUPLICATING:
                    return None
                return f"{name}() over the reporting nodes counts a cluster-wide series twice when two report"
        pos = name_at if name else open_at


def check(where, expr, failures):
    s = blank_strings(expr)
    for family in CLUSTER_FAMILIES:
        for m in re.finditer(r"(?<![A-Za-z0-9_:])" + family + r"(?![A-Za-z0-9_:])", s):
            why = verdict(s, m.start())
            if why:
                failures.append(f"{where}: {family} in {expr.strip()!r}: {why}; use max by (...)")


def dashboard_targets(panels, out):
    for panel in panels:
        for t in panel.get("targets", []):
            if "expr" in t:
                out.append((panel.get("title", "?"), t["expr"]))
        dashboard_targets(panel.get("panels", []), out)


def alert_exprs(text):
    """(alert name, expr) of each rule, read as text as alerts.yml writes them (expr: | blocks)."""
    out = []
    for block in re.split(r"^\s*- alert: ", text, flags=re.MULTILINE)[1:]:
        name = block.split("\n", 1)[0].strip()
        m = re.search(r"^(\s+)expr: \|\n((?:\1  .*\n|\s*\n)+)", block, re.MULTILINE)
        if m:
            out.append((name, m.group(2)))
        else:
            m = re.search(r"^\s+expr: (.+)$", block, re.MULTILINE)
            out.append((name, m.group(1) if m else ""))
    return out


def self_test():
    """The scanner on known forms: what must pass and what must fail."""
    good = ['max by (provider, state) (kg_queue_chunks{state!="done"})', "max(kg_graph_relations)",
            "max by (provider) (sum by (job, instance, provider) (kg_queue_chunks{state=~\"ready|delayed\"}))",
            "sum by (provider) (max by (provider, state) (kg_queue_chunks))", "max(kg_node_up) by (node)",
            "min_over_time((max by (provider) (kg_queue_chunks{state=\"dead\"}))[15m:])",
            "x and on (node) group by (node) (kg_node_up)", "y and on () absent(kg_node_up)"]
    bad = ['sum by (provider, state) (kg_queue_chunks{state!="done"})', "kg_node_up{node=~\"$node\"}",
           "sum(max_over_time(kg_graph_nodes[5m]))", "count(kg_node_up)", "sum(kg_node_up) by (node)",
           "x and on (job, instance) (kg_queue_chunks)"]
    errors = []
    for e in good:
        f = []
        check("self-test", e, f)
        errors += [f"self-test: passes a good form wrongly: {x}" for x in f]
    for e in bad:
        f = []
        check("self-test", e, f)
        if not f:
            errors.append(f"self-test: a bad form passes: {e}")
    return errors


source = sys.argv[1]
failures = self_test()
with open(os.path.join(source, "deploy/grafana/kgflow-dashboard.json")) as f:
    dash = json.load(f)
targets = []
dashboard_targets(dash.get("panels", []), targets)
for title, expr in targets:
    check(f"dashboard panel {title!r}", expr, failures)
with open(os.path.join(source, "deploy/prometheus/alerts.yml")) as f:
    rules = alert_exprs(f.read())
for name, expr in rules:
    if not expr.strip():
        failures.append(f"alerts.yml: {name}: no expr found")
    check(f"alert {name}", expr, failures)
for f in failures:
    print("FAIL:", f)
print(f"{len(targets)} dashboard expressions, {len(rules)} alert expressions, {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
