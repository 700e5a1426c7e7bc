#!/usr/bin/env python3
"""The README's extraction-quality table, rendered from `kgflow eval --json` and checked by a test.

  scores.py KGFLOW --table                 print the table for eval/tuning.jsonl and eval/heldout.jsonl
  scores.py KGFLOW --write README.md       replace the table between the markers
  scores.py KGFLOW --check README.md       exit 1 if the README quotes other scores than a fresh run

The table lives between `<!-- eval:begin -->` and `<!-- eval:end -->`. The builtin provider is
deterministic, so a change to its rules that moves a score fails `make test` until the README is
rewritten with --write: the quoted scores are always those of the code beside them.
"""
import json
import os
import subprocess
import sys

BEGIN, END = "<!-- eval:begin -->", "<!-- eval:end -->"
HERE = os.path.dirname(os.path.abspath(__file__))
SETS = ["tuning", "heldout"]
COLUMNS = ["entities_typed", "entities_untyped", "relations_typed", "relations_untyped"]


def run(kgflow, name):
    out = subprocess.run([kgflow, "eval", os.path.join(HERE, name + ".jsonl"), "--json", "--max-misses", "0"],
                         check=True, capture_output=True, text=True, env=dict(os.environ, KG_CONFIG="")).stdout
    return json.loads(out)


def prf(s):
    def f(x):
        return "-" if x is None else f"{x:.3f}"
    return f"{f(s['precision'])} / {f(s['recall'])} / {f(s['f1'])}"


def table(kgflow):
    lines = ["| set | scope | items | entities typed P / R / F1 | entities untyped P / R / F1 "
             "| relations typed P / R / F1 | relations untyped P / R / F1 |",
             "|---|---|---|---|---|---|---|"]
    for name in SETS:
        report = run(kgflow, name)
        scopes = sorted(report["languages"].items()) + [("overall", report["overall"])]
        for scope, s in scopes:
            lines.append(f"| {name} | {scope} | {s['items']} | " + " | ".join(prf(s[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def between(text):
    b, e = text.find(BEGIN), text.find(END)
    if b < 0 or e < b:
        sys.exit(f"markers {BEGIN} ... {END} not found")
    return b + len(BEGIN), e


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    kgflow, mode = sys.argv[1], sys.argv[2]
    t = table(kgflow)
    if mode == "--table":
        print(t)
        return
    path = sys.argv[3]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    b, e = between(text)
    if mode == "--write":
        with open(path, "w", encoding="utf-8") as f:
            f.write(text[:b] + "\n" + t + "\n" + text[e:])
    elif mode == "--check":
        if text[b:e].strip() != t.strip():
            print("README quotes other extraction scores than the code gives. Fresh run:\n" + t)
            print(f"Rewrite it with: {sys.argv[0]} {kgflow} --write {path}")
            sys.exit(1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
